"""The ``config`` object: the settings a repository is created with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import CorruptionError
from .chunker import METADATA_CHUNKS, ChunkerParams
from .envelope import ObjectType
from .packs import DEFAULT_PACK_SIZE

FORMAT = 1
#: Bounds on the sizes a config may set, so that a crafted one cannot ask for huge buffers.
MAX_CHUNK_SIZE = 64 * 1024 * 1024
MAX_SEGMENT_SIZE = 1 << 40
MAX_PACK_SIZE = 1024 * 1024 * 1024
#: Keys the checksum of unauthenticated envelopes: integrity only, 32 public bytes.
CHECKSUM_KEY = b"kvbackup v1 object checksum key!"


@dataclass
class RepoConfig:
    """The settings a repository is created with (the ``config`` object)."""

    id: str
    created: str
    encryption: str | None
    transforms: list[dict[str, Any]]
    chunker: ChunkerParams
    pack_size: int = DEFAULT_PACK_SIZE
    master_key: str | None = None  # only in unencrypted repositories

    def to_json(self) -> bytes:
        data = {
            "format": FORMAT,
            "id": self.id,
            "created": self.created,
            "encryption": self.encryption,
            "transforms": self.transforms,
            "chunker": self.chunker.as_dict(),
            "pack_size": self.pack_size,
        }
        if self.chunker.segment_size is not None:
            # At the top level: kvbackup 0.1 reads ``chunker`` strictly but ignores unknown
            # top-level keys, so it still opens (and restores from) a newer repository.
            data["segment_size"] = self.chunker.segment_size
        if self.master_key:
            data["master_key"] = self.master_key
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> RepoConfig:
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT:
                raise ValueError(f"unsupported repository format {data.get('format')!r}")
            return cls(
                id=str(data["id"]),
                created=str(data["created"]),
                encryption=data["encryption"],
                transforms=list(data["transforms"]),
                chunker=_checked_chunker(data["chunker"], data.get("segment_size")),
                pack_size=_bounded_int(data["pack_size"], "pack_size", MAX_PACK_SIZE),
                master_key=data.get("master_key"),
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise CorruptionError(f"config: malformed ({exc!s:.200})") from None


def _bounded_int(value: Any, name: str, high: int) -> int:
    if type(value) is not int or not 0 < value <= high:
        raise ValueError(f"{name} must be an integer from 1 to {high}")
    return value


def _checked_chunker(data: Any, segment_size: Any) -> ChunkerParams:
    if not isinstance(data, dict):
        raise TypeError("chunker is not a JSON object")
    # A config without ``segment_size`` was written before it existed: no forced cuts.
    params = ChunkerParams(**data, segment_size=segment_size)
    check_chunker(params)
    return params


def check_chunker(params: ChunkerParams) -> None:
    """``ValueError`` unless ``params`` are sizes a config may hold."""
    for name, value in params.as_dict().items():
        _bounded_int(value, f"chunker {name}", MAX_CHUNK_SIZE)
    if params.segment_size is not None:
        _bounded_int(params.segment_size, "segment_size", MAX_SEGMENT_SIZE)
        if params.segment_size < max(params.max_size, params.small_file):
            raise ValueError("segment_size is smaller than the chunker's max_size or small_file")


def decode_limits(config: RepoConfig) -> dict[int, int]:
    """The largest decoded size of the objects of a repository made with ``config``."""
    chunk = max(config.chunker.max_size, config.chunker.small_file, METADATA_CHUNKS.max_size)
    return {
        ObjectType.DATA: chunk,
        ObjectType.METADATA: chunk,
        ObjectType.PACK_TRAILER: max(64 * 1024 * 1024, 2 * config.pack_size),
    }
