"""Planning reads of chunks: few, large, parallel ranged GETs, results in the asked order.

Chunks are asked for in the order a caller needs them (the files of a restore, one after
the other). Within a bounded window, chunks of the same pack that lie close together are
read with one ranged GET, even when other packs' chunks come in between (deduplicated
content points back into older packs). Several GETs are in flight at once; their results
are handed back in the order asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import Generic, TypeVar

from ..format.index import BlobLocation

T = TypeVar("T")
R = TypeVar("R")

#: One chunk asked for: its position in the request order, the caller's tag, its id, and
#: its location (``None`` if the index does not know it).
Item = tuple[int, T, bytes, BlobLocation | None]


class Span(Generic[T]):
    """A byte range of one pack and the chunks read from it."""

    __slots__ = ("end", "future", "items", "pack_id", "start")

    def __init__(self, item: Item[T]):
        loc = item[3]
        self.pack_id = loc.pack_id if loc else b""
        self.start = loc.offset if loc else 0
        self.end = loc.offset + loc.length if loc else 0
        self.items: list[Item[T]] = [item]
        self.future: Future[list[tuple[int, T, R]]] | None = None  # type: ignore[valid-type]

    def try_add(self, item: Item[T], max_span: int, max_gap: int) -> bool:
        loc = item[3]
        if loc is None or not self.pack_id:
            return False
        end = max(self.end, loc.offset + loc.length)
        if self.start <= loc.offset <= self.end + max_gap and end - self.start <= max_span:
            self.items.append(item)
            self.end = end
            return True
        return False

    @property
    def size(self) -> int:
        return self.end - self.start


def fetch_ordered(
    items: Iterable[tuple[T, bytes]],
    locate: Callable[[bytes], BlobLocation | None],
    read_span: Callable[[Span[T]], list[tuple[int, T, R]]],
    executor: Executor,
    # A 16 MiB budget keeps a restore's peak below the key derivation's (Argon2id, 64 MiB)
    # and still has four or more GETs in flight; a larger one bought no speed
    # (docs/performance.md).
    window_bytes: int = 16 * 1024 * 1024,
    max_span: int = 4 * 1024 * 1024,
    max_gap: int = 256 * 1024,
    max_open: int = 1024,
) -> Iterator[tuple[T, R]]:
    """Yield ``(tag, read_span's result for the chunk)`` for each ``(tag, chunk id)`` in
    ``items``, in order.

    Memory is bounded by ``window_bytes``: a chunk counts from the moment it is planned
    until it is handed back, by the larger of its stored and its decoded size (a chunk
    repeated in a file counts each time: each time is decoded apart), so spans in flight and
    results waiting for an earlier chunk are both within the window, however well the data
    compresses. ``read_span`` must refuse a chunk whose decoded size differs from its
    location's ``raw_length``.
    """
    open_spans: dict[bytes, Span[T]] = {}
    span_of: dict[int, Span[T]] = {}
    ready: dict[int, tuple[T, R]] = {}
    sizes: dict[int, int] = {}
    held = 0  # stored bytes of chunks planned and not yet handed back
    next_out = 0
    seq = 0

    def submit(span: Span[T]) -> None:
        if span.future is None:
            if open_spans.get(span.pack_id) is span:
                del open_spans[span.pack_id]
            span.future = executor.submit(read_span, span)

    def collect(span: Span[T]) -> None:
        assert span.future is not None
        for n, tag, result in span.future.result():
            ready[n] = (tag, result)
            span_of.pop(n, None)

    def hand_back(block_above: int) -> Iterator[tuple[T, R]]:
        """Yield what is ready, in order, blocking while more than ``block_above`` bytes
        are held (``-1``: block until everything is handed back)."""
        nonlocal next_out, held
        while next_out < seq:
            if next_out not in ready:
                span = span_of[next_out]
                if held <= block_above and (span.future is None or not span.future.done()):
                    return
                submit(span)
                collect(span)
            held -= sizes.pop(next_out)
            yield ready.pop(next_out)
            next_out += 1

    for tag, cid in items:
        loc = locate(cid)
        item: Item[T] = (seq, tag, cid, loc)
        span = open_spans.get(loc.pack_id) if loc else None
        if span is None or not span.try_add(item, max_span, max_gap):
            if span is not None:
                submit(span)
            span = Span(item)
            if span.pack_id:
                open_spans[span.pack_id] = span
            else:
                submit(span)
        sizes[seq] = max(loc.length, loc.raw_length) if loc else 0
        held += sizes[seq]
        span_of[seq] = span
        seq += 1
        if len(open_spans) > max_open:
            submit(min(open_spans.values(), key=lambda s: s.items[0][0]))
        # keep GETs flowing: the span holding the oldest unanswered chunk goes out first
        oldest = span_of.get(next_out)
        if oldest is not None and held > window_bytes // 4:
            submit(oldest)
        yield from hand_back(block_above=window_bytes // 2 if held > window_bytes else window_bytes)
    for span in sorted(open_spans.values(), key=lambda s: s.items[0][0]):
        submit(span)
    yield from hand_back(block_above=-1)
