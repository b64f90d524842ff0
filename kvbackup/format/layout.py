"""Where each object lives in the store: the one place that builds and parses keys.

    config                                the repository settings
    keys/<slot id>                        password key slots (encrypted repositories)
    snapshots/<id>.open, snapshots/<id>   a snapshot record, incomplete then complete
    groups/<gid>/packs/<32 hex>           packs of chunks
    groups/<gid>/index/<32 hex>           index fragments naming packs

See ``docs/format.md``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

CONFIG_KEY = "config"
KEYS_PREFIX = "keys/"
SNAPSHOTS_PREFIX = "snapshots/"
GROUPS_PREFIX = "groups/"
OPEN_SUFFIX = ".open"
PACK_ID_BYTES = 16
PACKS = "packs"
INDEX = "index"
_ID_RE = re.compile(r"^\d{8}T\d{6}Z(-\d{1,4})?$")


def slot_key(slot_id: str) -> str:
    return KEYS_PREFIX + slot_id


def slot_id_from_key(key: str) -> str:
    return key.split("/", 1)[1]


def is_snapshot_id(name: str) -> bool:
    return bool(_ID_RE.match(name))


def snapshot_key(snapshot_id: str, final: bool) -> str:
    return f"{SNAPSHOTS_PREFIX}{snapshot_id}" + ("" if final else OPEN_SUFFIX)


def parse_snapshot_key(key: str) -> tuple[str, bool] | None:
    """``(snapshot id, final)`` of a key under ``snapshots/``; ``None`` if it is not a
    snapshot record."""
    name = key.split("/", 1)[1]
    base = name.removesuffix(OPEN_SUFFIX)
    if not is_snapshot_id(base):
        return None
    return base, not name.endswith(OPEN_SUFFIX)


def group_prefix(group: str) -> str:
    return f"{GROUPS_PREFIX}{group}/"


def packs_prefix(group: str) -> str:
    return f"{GROUPS_PREFIX}{group}/{PACKS}/"


def index_prefix(group: str) -> str:
    return f"{GROUPS_PREFIX}{group}/{INDEX}/"


def pack_key(group: str, pack_id: bytes) -> str:
    return packs_prefix(group) + pack_id.hex()


def pack_id_from_key(key: str) -> bytes | None:
    name = key.rsplit("/", 1)[-1]
    try:
        raw = bytes.fromhex(name)
    except ValueError:
        return None
    return raw if len(raw) == PACK_ID_BYTES else None


def new_index_key(group: str) -> str:
    """A fresh, random key for an index fragment of ``group``."""
    return index_prefix(group) + secrets.token_hex(16)


@dataclass(frozen=True)
class GroupObject:
    """A key under ``groups/``: its group, its kind (``packs`` or ``index``) and name."""

    group: str
    kind: str
    name: str


def parse_group_key(key: str) -> GroupObject | None:
    """The parts of ``groups/<gid>/<kind>/<name>``; ``None`` for any other shape."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != GROUPS_PREFIX.rstrip("/"):
        return None
    return GroupObject(parts[1], parts[2], parts[3])
