"""Restore's overwrite policy: what to do with an entry that already exists in the target.

``if-newer`` is the default: a restore never discards a file that was changed after the
backup was taken (the target's copy is newer), yet it does roll back files that are older
than the snapshot's, and re-running an interrupted restore skips every file it already
completed (same size and mtime). ``always`` restores the snapshot's copy regardless (use it
to roll back newer files); ``if-changed`` replaces a file unless its size and mtime match;
``never`` leaves everything that exists alone.
"""

from __future__ import annotations

import os
import stat

from ..errors import UsageError
from ..sources import DIR, FILE, SYMLINK, Entry

ALWAYS = "always"
IF_CHANGED = "if-changed"
IF_NEWER = "if-newer"
NEVER = "never"
POLICIES = (ALWAYS, IF_CHANGED, IF_NEWER, NEVER)
DEFAULT = IF_NEWER

#: Decisions: write the entry, leave an identical one, keep one the policy protects.
WRITE = "write"
UNCHANGED = "unchanged"
KEEP = "keep"


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise UsageError(f"unknown overwrite policy {policy!r} (one of {', '.join(POLICIES)})")
    return policy


def _same(existing: os.stat_result, entry: Entry, path: bytes) -> bool:
    """The target already holds what the snapshot has, judged by metadata only."""
    mode = existing.st_mode
    if entry.kind == FILE:
        return (
            stat.S_ISREG(mode)
            and existing.st_size == entry.size
            and existing.st_mtime_ns == entry.mtime_ns
        )
    if entry.kind == SYMLINK:
        try:
            return stat.S_ISLNK(mode) and os.readlink(path) == (entry.target or b"")
        except OSError:
            return False
    return False


def decide(policy: str, entry: Entry, path: bytes) -> tuple[str, str]:
    """What to do with ``entry`` at ``path`` (not following a symlink there): a decision
    (:data:`WRITE`, :data:`UNCHANGED`, :data:`KEEP`) and, for a kept entry, why."""
    try:
        existing = os.lstat(path)
    except FileNotFoundError:
        return WRITE, ""
    if entry.kind == DIR:
        return WRITE, ""  # directories are merged, never replaced by this decision
    if stat.S_ISDIR(existing.st_mode):
        return KEEP, "a directory is in the way"
    if policy == ALWAYS:
        return WRITE, ""
    if _same(existing, entry, path):
        return UNCHANGED, ""
    if policy == NEVER:
        return KEEP, "exists in the target (--overwrite never)"
    if policy == IF_NEWER and existing.st_mtime_ns > entry.mtime_ns:
        return KEEP, "the target's copy is newer (--overwrite if-newer)"
    return WRITE, ""
