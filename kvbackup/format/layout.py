"""Where each object lives in the store: the one place that builds and parses keys.

    config                                the repository settings
    keys/<slot id>                        password key slots (encrypted repositories)
    snapshots/<id>.open, snapshots/<id>   a snapshot record, incomplete then complete
    groups/<gid>/packs/<32 hex>           packs of chunks
    groups/<gid>/index/<32 hex>           index fragments naming packs
    groups/<gid>/index-damaged/<32 hex>   damage records (chunk copies verify found damaged)
    quarantine/<original key>             objects ``repair`` set aside, unchanged

See ``docs/format.md``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

CONFIG_KEY = "config"
KEYS_PREFIX = "keys/"
SNAPSHOTS_PREFIX = "snapshots/"
GROUPS_PREFIX = "groups/"
OPEN_SUFFIX = ".open"
PACK_ID_BYTES = 16
PACKS = "packs"
INDEX = "index"
#: Damage records sit beside the index (``index-damaged/``), so that one listing of
#: :func:`index_listing_prefix` finds both; readers that predate them list ``index/`` only.
DAMAGED = "index-damaged"
QUARANTINE_PREFIX = "quarantine/"
#: A snapshot id: ``YYYYmmddTHHMMSS.ffffffZ-<8 hex>``, or an older version's
#: ``YYYYmmddTHHMMSSZ`` and ``YYYYmmddTHHMMSSZ-<n>``.
_ID_RE = re.compile(
    r"^(?P<second>\d{8}T\d{6})"
    r"(?:Z(?:-(?P<counter>\d{1,4}))?|\.(?P<micro>\d{6})Z-(?P<suffix>[0-9a-f]{8}))$"
)


def slot_key(slot_id: str) -> str:
    return KEYS_PREFIX + slot_id


def slot_id_from_key(key: str) -> str:
    return key.split("/", 1)[1]


def is_snapshot_id(name: str) -> bool:
    return bool(_ID_RE.match(name))


def snapshot_sort_key(snapshot_id: str) -> tuple[str, int, int, str]:
    """Orders ids by time, then an old id's counter (as a number), then the suffix."""
    match = _ID_RE.match(snapshot_id)
    if not match:
        return (snapshot_id, 0, 0, "")
    return (
        match["second"],
        int(match["micro"] or 0),
        int(match["counter"] or 0),
        match["suffix"] or "",
    )


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


def damage_prefix(group: str) -> str:
    return f"{GROUPS_PREFIX}{group}/{DAMAGED}/"


def index_listing_prefix(group: str) -> str:
    """The prefix whose one listing gives both the index fragments and the damage records
    of ``group`` (a partial segment: ``groups/<gid>/index``); see
    :func:`split_index_listing`."""
    return f"{GROUPS_PREFIX}{group}/{INDEX}"


def split_index_listing(group: str, keys: Iterable[str]) -> tuple[list[str], list[str]]:
    """The index fragment keys and the damage record keys among ``keys`` (a listing of
    :func:`index_listing_prefix`); anything else is left out."""
    fragments, damage = [], []
    for key in keys:
        if key.startswith(index_prefix(group)):
            fragments.append(key)
        elif key.startswith(damage_prefix(group)):
            damage.append(key)
    return fragments, damage


def new_damage_key(group: str) -> str:
    """A fresh, random key for a damage record of ``group``."""
    return damage_prefix(group) + secrets.token_hex(16)


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
