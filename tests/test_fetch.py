"""The read planner returns every chunk asked for, in order, with few GETs."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from kvbackup.core.fetch import Span, fetch_ordered
from kvbackup.format.index import BlobLocation


def layout(n_packs: int, per_pack: int, size: int) -> dict[bytes, BlobLocation]:
    locs = {}
    for p in range(n_packs):
        for i in range(per_pack):
            cid = bytes([p, i]) + bytes(30)
            locs[cid] = BlobLocation(cid, 6, bytes([p]) * 16, i * size, size, size)
    return locs


def run(items: list[tuple[int, bytes]], locs: dict[bytes, BlobLocation], **kw: int):
    spans: list[Span[int]] = []

    def read(span: Span[int]) -> list[tuple[int, int, bytes]]:
        spans.append(span)
        return [(n, tag, cid) for n, tag, cid, _ in span.items]

    with ThreadPoolExecutor(4) as pool:
        got = list(fetch_ordered(items, locs.get, read, pool, **kw))
    return got, spans


@pytest.mark.parametrize("seed", range(20))
def test_every_chunk_comes_back_in_the_order_asked(seed: int) -> None:
    rng = random.Random(seed)
    locs = layout(6, 40, rng.choice([1000, 300_000, 5 << 20]))
    ids = [*locs, bytes(32)]  # one the index does not know
    items = [(i, rng.choice(ids)) for i in range(rng.randrange(1, 600))]
    got, _ = run(items, locs, window_bytes=rng.choice([1 << 20, 64 << 20]))
    assert got == [(tag, cid) for tag, cid in items]


def test_sequential_chunks_of_a_pack_are_read_in_one_get() -> None:
    locs = layout(2, 100, 10_000)
    items = list(enumerate(locs))
    got, spans = run(items, locs)
    assert len(got) == 200
    assert len(spans) == 2


def test_chunks_interleaved_from_two_packs_still_coalesce() -> None:
    locs = layout(2, 50, 10_000)
    ids = list(locs)
    items = list(enumerate(x for pair in zip(ids[:50], ids[50:], strict=False) for x in pair))
    _, spans = run(items, locs)
    assert len(spans) == 2


def test_a_span_never_exceeds_the_maximum() -> None:
    locs = layout(1, 100, 1 << 20)
    _, spans = run(list(enumerate(locs)), locs, max_span=8 << 20, window_bytes=64 << 20)
    assert all(s.size <= 8 << 20 for s in spans)
    assert len(spans) == 13
