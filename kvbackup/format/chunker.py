"""Content-defined chunking (FastCDC) and keyed chunk ids (BLAKE3)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import blake3

ID_BYTES = 32


@dataclass(frozen=True)
class ChunkerParams:
    """FastCDC bounds; files no larger than ``small_file`` are one chunk."""

    min_size: int = 256 * 1024
    avg_size: int = 1024 * 1024
    max_size: int = 4 * 1024 * 1024
    small_file: int = 1024 * 1024

    def as_dict(self) -> dict[str, int]:
        return {
            "min_size": self.min_size,
            "avg_size": self.avg_size,
            "max_size": self.max_size,
            "small_file": self.small_file,
        }


DATA_CHUNKS = ChunkerParams()
METADATA_CHUNKS = ChunkerParams(min_size=16 * 1024, avg_size=64 * 1024, max_size=256 * 1024)


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
            # Ask for what stat said, plus one byte to notice a file that grew.
            data = _read_up_to(stream, size_hint + 1)
            if len(data) > size_hint:
                data += _read_up_to(stream, self.params.small_file + 1 - len(data))
            if len(data) <= self.params.small_file:
                if data:
                    yield data
                return
            source = _Prefixed(data, stream)  # the file grew: cut it as a large one
        for chunk in self._cdc.cut_stream(source):
            yield bytes(chunk.data)

    def cut_points(self, buf: bytes | bytearray | memoryview) -> list[int]:
        """The end offsets of the chunks of ``buf``."""
        return [c.offset + c.length for c in self._cdc.cut_buf(buf)]


def _read_up_to(stream: BinaryIO, n: int) -> bytes:
    parts, left = [], n
    while left > 0:
        part = stream.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


class _Prefixed:
    """A stream that first returns ``head`` then reads on from ``rest``."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self._head, self._rest = head, rest

    def read(self, n: int = -1) -> bytes:
        if self._head:
            out, self._head = self._head, b""
            return out
        return self._rest.read(n)


class ChunkHasher:
    """Keyed BLAKE3: the chunk id of ``data``, which reveals nothing without the key."""

    def __init__(self, key: bytes):
        self._key = key

    def __call__(self, data: bytes) -> bytes:
        return blake3.blake3(data, key=self._key, max_threads=1).digest()
