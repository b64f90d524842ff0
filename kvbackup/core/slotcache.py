"""A local memory of which key slot last opened a repository, so it is tried first.

The repository is recognised by a hash of its ``config`` object (written once, never
changed), not by its location, so a moved or copied repository is still known. The memory
is a hint: a missing, stale or unreadable one only means trying the slots in the usual
order. It lives in the private cache directory (see :mod:`kvbackup.cachedir`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os

from ..cachedir import cache_root, read_json, write_private_json


def _path(config_blob: bytes) -> str:
    name = hashlib.sha256(b"kvbackup key slot memory\0" + config_blob).hexdigest()[:32]
    return os.path.join(cache_root(), "key-slots", name + ".json")


def recall(config_blob: bytes) -> str | None:
    """The slot that last opened the repository whose config is ``config_blob``, if known."""
    data = read_json(_path(config_blob))
    slot = data.get("slot") if isinstance(data, dict) else None
    return slot if isinstance(slot, str) else None


def remember(config_blob: bytes, slot_id: str) -> None:
    """Note that ``slot_id`` opened the repository; failing to is harmless."""
    with contextlib.suppress(OSError):
        if recall(config_blob) != slot_id:
            write_private_json(_path(config_blob), {"slot": slot_id})
