"""Packs: many transformed chunks in one object, with a trailer listing them.

Layout: ``blob₀ blob₁ … blobₙ₋₁ trailer-envelope u32le(len(trailer-envelope))``. The trailer
payload is the blob table (see :mod:`kvbackup.format.index`), so a pack describes itself even
when no index fragment names it (a backup killed between the two writes).
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass, field

from .envelope import Codec, ObjectType
from .index import BlobLocation, decode_blob_table, encode_blob_table
from .layout import PACK_ID_BYTES

TRAILER_LEN = struct.Struct("<I")
DEFAULT_PACK_SIZE = 16 * 1024 * 1024


@dataclass
class PackBuilder:
    """Collects blobs for one pack."""

    pack_id: bytes = field(default_factory=lambda: secrets.token_bytes(PACK_ID_BYTES))
    parts: list[bytes] = field(default_factory=list)
    blobs: list[BlobLocation] = field(default_factory=list)
    size: int = 0

    def add(self, chunk_id: bytes, otype: int, blob: bytes, raw_length: int) -> None:
        self.blobs.append(
            BlobLocation(chunk_id, otype, self.pack_id, self.size, len(blob), raw_length)
        )
        self.parts.append(blob)
        self.size += len(blob)

    def seal(self, codec: Codec, key: str) -> bytes:
        """The pack's bytes, trailer included."""
        trailer = codec.encode(ObjectType.PACK_TRAILER, key.encode(), encode_blob_table(self.blobs))
        self.parts.append(trailer)
        self.parts.append(TRAILER_LEN.pack(len(trailer)))
        data = b"".join(self.parts)
        self.parts = []
        return data


def trailer_length(tail: bytes) -> int:
    """The length of the trailer envelope, from the pack's last bytes."""
    (length,) = TRAILER_LEN.unpack(tail[-TRAILER_LEN.size :])
    return int(length)


def decode_trailer(codec: Codec, key: str, envelope: bytes, pack_id: bytes) -> list[BlobLocation]:
    """The blob table of a pack, from its trailer envelope."""
    payload = codec.decode(ObjectType.PACK_TRAILER, key.encode(), envelope, key)
    return decode_blob_table(payload, pack_id, key)
