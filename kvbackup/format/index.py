"""Blob tables, index fragments and the in-memory index of a group.

A blob table is ``u32le count`` then, per blob, ``id[32] type:u8 offset:u32le length:u32le
raw_length:u32le``. An index fragment is ``u32le pack-count`` then, per pack,
``pack-id[16]`` and the pack's blob table.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from ..errors import CorruptionError

_COUNT = struct.Struct("<I")
_BLOB = struct.Struct("<32sBIII")
_PACK_ID = 16


class BlobLocation(NamedTuple):
    """Where a chunk is stored: pack, byte range of its envelope, and its plain size.

    A named tuple rather than a frozen dataclass: an index holds one per stored chunk,
    and a named tuple is built about 3x faster (every command decodes the index)."""

    chunk_id: bytes
    otype: int
    pack_id: bytes
    offset: int
    length: int
    raw_length: int


def encode_blob_table(blobs: list[BlobLocation]) -> bytes:
    out = [_COUNT.pack(len(blobs))]
    out.extend(_BLOB.pack(b.chunk_id, b.otype, b.offset, b.length, b.raw_length) for b in blobs)
    return b"".join(out)


def _decode_blobs(
    data: bytes, pos: int, pack_id: bytes, what: str
) -> tuple[list[BlobLocation], int]:
    if pos + _COUNT.size > len(data):
        raise CorruptionError(f"{what}: truncated blob table")
    (count,) = _COUNT.unpack_from(data, pos)
    pos += _COUNT.size
    end = pos + count * _BLOB.size
    if end > len(data):
        raise CorruptionError(f"{what}: truncated blob table")
    blobs = [
        BlobLocation(cid, otype, pack_id, off, length, raw)
        for cid, otype, off, length, raw in _BLOB.iter_unpack(data[pos:end])
    ]
    return blobs, end


def decode_blob_table(data: bytes, pack_id: bytes, what: str) -> list[BlobLocation]:
    blobs, end = _decode_blobs(data, 0, pack_id, what)
    if end != len(data):
        raise CorruptionError(f"{what}: trailing bytes after blob table")
    return blobs


def encode_fragment(packs: Iterable[tuple[bytes, list[BlobLocation]]]) -> bytes:
    items = list(packs)
    out = [_COUNT.pack(len(items))]
    for pack_id, blobs in items:
        out.append(pack_id)
        out.append(encode_blob_table(blobs))
    return b"".join(out)


def decode_fragment(data: bytes, what: str) -> Iterator[tuple[bytes, list[BlobLocation]]]:
    if len(data) < _COUNT.size:
        raise CorruptionError(f"{what}: truncated index fragment")
    (count,) = _COUNT.unpack_from(data, 0)
    pos = _COUNT.size
    for _ in range(count):
        pack_id = data[pos : pos + _PACK_ID]
        if len(pack_id) != _PACK_ID:
            raise CorruptionError(f"{what}: truncated index fragment")
        blobs, pos = _decode_blobs(data, pos + _PACK_ID, pack_id, what)
        yield pack_id, blobs
    if pos != len(data):
        raise CorruptionError(f"{what}: trailing bytes after index fragment")


class GroupIndex:
    """Chunk id -> location for one backup group, safe to update from several threads."""

    def __init__(self) -> None:
        self._blobs: dict[bytes, BlobLocation] = {}
        self._others: dict[bytes, list[BlobLocation]] = {}
        self._avoid: set[tuple[bytes, bytes]] = set()
        self.packs: set[bytes] = set()
        self.fragment_keys: list[str] = []  # the fragments it was loaded from
        self._lock = threading.Lock()

    def add_pack(self, pack_id: bytes, blobs: list[BlobLocation]) -> None:
        with self._lock:
            self.packs.add(pack_id)
            for b in blobs:
                if (b.chunk_id, pack_id) in self._avoid:
                    continue
                if self._blobs.setdefault(b.chunk_id, b) is not b:
                    self._others.setdefault(b.chunk_id, []).append(b)

    def avoid(self, damaged: Iterable[tuple[bytes, bytes]]) -> None:
        """Never use the copies ``(chunk id, pack id)`` known to be damaged: another copy
        of the chunk is used if there is one, else the chunk counts as not stored (so a
        backup stores it again)."""
        with self._lock:
            for cid, pack_id in damaged:
                self._avoid.add((cid, pack_id))
                others = [b for b in self._others.pop(cid, []) if b.pack_id != pack_id]
                current = self._blobs.get(cid)
                if current is not None and current.pack_id == pack_id:
                    del self._blobs[cid]
                    if others:
                        self._blobs[cid] = others.pop(0)
                if others:
                    self._others[cid] = others

    def get(self, chunk_id: bytes) -> BlobLocation | None:
        return self._blobs.get(chunk_id)

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self._blobs

    def has_all(self, chunk_ids: Iterable[bytes]) -> bool:
        """Every one of ``chunk_ids`` is stored (one call for a file's chunks)."""
        return all(map(self._blobs.__contains__, chunk_ids))

    def __len__(self) -> int:
        return len(self._blobs)

    def ids(self) -> set[bytes]:
        with self._lock:
            return set(self._blobs)

    def locations(self) -> list[BlobLocation]:
        with self._lock:
            return list(self._blobs.values())
