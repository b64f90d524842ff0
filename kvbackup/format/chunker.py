"""Content-defined chunking (FastCDC) and keyed chunk ids (BLAKE3)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import blake3

ID_BYTES = 32
#: The segment size of repositories created from now on (see :class:`ChunkerParams`).
DEFAULT_SEGMENT_SIZE = 256 * 1024 * 1024


@dataclass(frozen=True)
class ChunkerParams:
    """FastCDC bounds; files no larger than ``small_file`` are one chunk.

    ``segment_size``: a larger file is cut at every multiple of it (a forced cut), and each
    segment is chunked on its own, its content-defined cuts starting afresh, so that any
    run of whole segments can be chunked apart (by a Dask worker) with the very chunks a
    pass over the whole file gives. ``None`` (repositories made before it existed): no
    forced cut.
    """

    min_size: int = 256 * 1024
    avg_size: int = 1024 * 1024
    max_size: int = 4 * 1024 * 1024
    small_file: int = 1024 * 1024
    segment_size: int | None = DEFAULT_SEGMENT_SIZE

    def as_dict(self) -> dict[str, int]:
        """The config's ``chunker`` object. ``segment_size`` is not in it: the config holds
        it at its top level, where versions that predate it ignore it (docs/format.md)."""
        return {
            "min_size": self.min_size,
            "avg_size": self.avg_size,
            "max_size": self.max_size,
            "small_file": self.small_file,
        }


DATA_CHUNKS = ChunkerParams()
#: File lists are cut from a buffer (:meth:`Chunker.cut_points`), never in segments.
METADATA_CHUNKS = ChunkerParams(
    min_size=16 * 1024, avg_size=64 * 1024, max_size=256 * 1024, segment_size=None
)


class Chunker:
    """Cuts streams into chunks. One instance per thread (FastCDC is not thread-safe)."""

    def __init__(self, params: ChunkerParams):
        from pyfastcdc import FastCDC

        self.params = params
        self._cdc = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size)

    def chunks(self, stream: BinaryIO, size_hint: int = -1) -> Iterator[bytes]:
        """Yield the chunks of ``stream`` as bytes."""
        source: Any = stream
        if 0 <= size_hint <= self.params.small_file:
            data = read_small(stream, size_hint, self.params.small_file)
            if len(data) <= self.params.small_file:
                if data:
                    yield data
                return
            source = _Prefixed(data, stream)  # the file grew: cut it as a large one
        yield from self.segment_chunks(source)

    def segment_chunks(self, stream: BinaryIO, limit: int | None = None) -> Iterator[bytes]:
        """Yield the chunks of ``stream``, which starts at a segment boundary of a file
        larger than ``small_file``, reading at most ``limit`` bytes (``None``: to the end).

        With a segment size, each segment is chunked on its own, so chunking segments
        ``k..`` of a file from its byte ``k * segment_size`` gives the chunks a pass over the
        whole file gives from there. Without one, the stream is one content-defined run.
        """
        segment = self.params.segment_size
        if segment is None:
            source: Any = stream if limit is None else _Limited(stream, limit)
            for chunk in self._cdc.cut_stream(source):
                yield bytes(chunk.data)
            return
        left = limit
        while left is None or left > 0:
            part = _Limited(stream, segment if left is None else min(segment, left))
            for chunk in self._cdc.cut_stream(part):
                yield bytes(chunk.data)
            if part.read_bytes < part.limit:
                return  # the end of the stream
            if left is not None:
                left -= part.read_bytes

    def cut_points(self, buf: bytes | bytearray | memoryview) -> list[int]:
        """The end offsets of the chunks of ``buf``."""
        return [c.offset + c.length for c in self._cdc.cut_buf(buf)]


def read_small(stream: BinaryIO, size_hint: int, small_file: int) -> bytes:
    """The whole of a file listed as ``size_hint <= small_file`` bytes: its one chunk. More
    than ``small_file`` bytes back (at most one more) mean the file grew past a small file's
    bound; what follows is left in ``stream``."""
    # Ask for what stat said, plus one byte to notice a file that grew.
    data = _read_up_to(stream, size_hint + 1)
    if len(data) > size_hint:
        data += _read_up_to(stream, small_file + 1 - len(data))
    return data


def _read_up_to(stream: BinaryIO, n: int) -> bytes:
    parts, left = [], n
    while left > 0:
        part = stream.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


class _Limited:
    """At most ``limit`` bytes of ``stream``, then end of file."""

    def __init__(self, stream: Any, limit: int):
        self._stream, self.limit, self.read_bytes = stream, limit, 0

    def readinto(self, buf: memoryview) -> int:
        want = min(len(buf), self.limit - self.read_bytes)
        if want <= 0:
            return 0
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:
            n = readinto(buf[:want]) or 0
        else:
            data = self._stream.read(want)
            n = len(data)
            buf[:n] = data
        self.read_bytes += n
        return n


class _Prefixed:
    """A stream that first returns ``head`` then reads on from ``rest``."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self._head, self._rest = head, rest

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if 0 <= n < len(self._head):
                out, self._head = self._head[:n], self._head[n:]
            else:
                out, self._head = self._head, b""
            return out
        return self._rest.read(n)


class ChunkHasher:
    """Keyed BLAKE3: the chunk id of ``data``, which reveals nothing without the key."""

    def __init__(self, key: bytes):
        self._key = key

    def __call__(self, data: bytes) -> bytes:
        return blake3.blake3(data, key=self._key, max_threads=1).digest()
