"""What changed between two snapshots: entries added, removed, modified, or changed in
metadata only.

File lists written by an ordered source (a directory) are sorted by path components, so the
two lists are merged in one streaming pass, holding one entry of each. A list found out of
order (an unordered source, such as a Python iterable) is compared through a table of the
first snapshot's entries instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..core.repo import RepoCore
from ..format.index import GroupIndex
from ..format.snapshots import Snapshot
from ..sources import FILE, SPECIAL_KINDS, SYMLINK, Entry

ADDED = "added"
REMOVED = "removed"
MODIFIED = "modified"
METADATA = "metadata"


@dataclass
class Change:
    """One entry that differs. ``fields`` names what differs for ``modified`` and
    ``metadata`` changes: ``type``, ``content``, ``target``, ``device``, ``mode``,
    ``mtime``, ``owner``, ``xattrs``, ``hardlink``, ``sparse``."""

    path: str
    change: str
    type: str
    size_before: int | None = None
    size_after: int | None = None
    fields: list[str] = field(default_factory=list)


@dataclass
class DiffResult:
    before: str
    after: str
    changes: list[Change] = field(default_factory=list)

    def count(self, change: str) -> int:
        return sum(1 for c in self.changes if c.change == change)

    @property
    def summary(self) -> dict[str, int]:
        return {k: self.count(k) for k in (ADDED, REMOVED, MODIFIED, METADATA)}

    def as_dict(self) -> dict[str, Any]:
        return {
            "before": self.before,
            "after": self.after,
            "summary": self.summary,
            "changes": [vars(c) for c in self.changes],
        }


class _OutOfOrder(Exception):
    pass


def run_diff(repo: RepoCore, before: Snapshot, after: Snapshot) -> DiffResult:
    """Compare snapshot ``before`` with snapshot ``after``; see :meth:`Repository.diff`."""
    indexes: dict[str, GroupIndex] = {}
    for snap in (before, after):
        if snap.group not in indexes:
            indexes[snap.group] = repo.load_index(snap.group)[0]

    def entries(snap: Snapshot) -> Iterator[Entry]:
        return repo.iter_entries(snap, indexes[snap.group])

    try:
        changes = list(_merge(_checked(entries(before)), _checked(entries(after))))
    except _OutOfOrder:
        changes = list(_by_table(entries(before), entries(after)))
    return DiffResult(before.id, after.id, changes)


def _checked(entries: Iterator[Entry]) -> Iterator[Entry]:
    last: bytes | None = None
    for entry in entries:
        key = entry.sort_key()
        if last is not None and key <= last:
            raise _OutOfOrder
        last = key
        yield entry


def _merge(a: Iterator[Entry], b: Iterator[Entry]) -> Iterator[Change]:
    ea, eb = next(a, None), next(b, None)
    while ea is not None or eb is not None:
        if eb is None or (ea is not None and ea.sort_key() < eb.sort_key()):
            assert ea is not None
            yield _removed(ea)
            ea = next(a, None)
        elif ea is None or eb.sort_key() < ea.sort_key():
            yield _added(eb)
            eb = next(b, None)
        else:
            change = compare_entries(ea, eb)
            if change:
                yield change
            ea, eb = next(a, None), next(b, None)


def _by_table(a: Iterator[Entry], b: Iterator[Entry]) -> Iterator[Change]:
    table = {e.path: e for e in a}
    for entry in b:
        old = table.pop(entry.path, None)
        change = _added(entry) if old is None else compare_entries(old, entry)
        if change:
            yield change
    for old in sorted(table.values(), key=Entry.sort_key):
        yield _removed(old)


def _size(entry: Entry) -> int | None:
    return entry.size if entry.kind == FILE else None


def _added(entry: Entry) -> Change:
    return Change(os.fsdecode(entry.path), ADDED, entry.kind, None, _size(entry))


def _removed(entry: Entry) -> Change:
    return Change(os.fsdecode(entry.path), REMOVED, entry.kind, _size(entry), None)


def compare_entries(a: Entry, b: Entry) -> Change | None:
    """The change from ``a`` to ``b`` (same path), or ``None`` if they are the same."""
    fields = []
    if a.kind != b.kind:
        fields.append("type")
    elif a.kind == FILE and (a.size != b.size or a.chunks != b.chunks):
        fields.append("content")
    elif a.kind == SYMLINK and a.target != b.target:
        fields.append("target")
    elif a.kind in SPECIAL_KINDS and a.rdev != b.rdev:
        fields.append("device")
    if a.mode != b.mode:
        fields.append("mode")
    if a.mtime_ns != b.mtime_ns:
        fields.append("mtime")
    if (a.uid, a.gid, a.user, a.group) != (b.uid, b.gid, b.user, b.group):
        fields.append("owner")
    if (a.xattrs or {}) != (b.xattrs or {}):
        fields.append("xattrs")
    if a.hardlink != b.hardlink:
        fields.append("hardlink")
    if a.kind == FILE and b.kind == FILE and a.sparse != b.sparse:
        fields.append("sparse")
    if not fields:
        return None
    kind = MODIFIED if {"type", "content", "target", "device"} & set(fields) else METADATA
    return Change(os.fsdecode(b.path), kind, b.kind, _size(a), _size(b), fields)
