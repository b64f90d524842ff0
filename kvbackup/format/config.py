"""The ``config`` object: the settings a repository is created with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import CorruptionError
from .chunker import ChunkerParams
from .packs import DEFAULT_PACK_SIZE

FORMAT = 1
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
                chunker=ChunkerParams(**data["chunker"]),
                pack_size=int(data["pack_size"]),
                master_key=data.get("master_key"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptionError(f"config: malformed ({exc})") from None
