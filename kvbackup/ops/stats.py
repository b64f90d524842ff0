"""Sizes and counts of a repository, or of one snapshot.

- ``logical_bytes``: the size of the files as the source had them (summed over snapshots
  for the whole repository, from the snapshot records).
- ``unique_bytes``: the plain size of the distinct chunks that hold them (data and file
  lists), what is left after deduplication; ``stored_bytes`` the same chunks as stored
  (compressed and encrypted).
- ``dedup_ratio`` = logical / unique data bytes; ``compression_ratio`` = unique / stored.
- ``temporary_objects`` / ``temporary_bytes``: what writes that never finished (a killed
  backup) left in the store; ``prune`` removes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..core.repo import RepoCore
from ..format.envelope import ObjectType
from ..format.layout import parse_group_key
from ..format.snapshots import Snapshot
from ..sources import DIR, FILE, SYMLINK


@dataclass
class Stats:
    """Sizes and counts; ``snapshot`` is ``None`` for the whole repository."""

    snapshot: str | None = None
    snapshots: int = 0
    groups: int = 0
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    logical_bytes: int = 0
    chunks: int = 0
    unique_bytes: int = 0
    unique_data_bytes: int = 0
    stored_bytes: int = 0
    packs: int = 0
    missing_chunks: int = 0
    temporary_objects: int = 0
    temporary_bytes: int = 0
    objects: dict[str, int] = field(default_factory=dict)

    @property
    def dedup_ratio(self) -> float:
        return self.logical_bytes / self.unique_data_bytes if self.unique_data_bytes else 1.0

    @property
    def compression_ratio(self) -> float:
        return self.unique_bytes / self.stored_bytes if self.stored_bytes else 1.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["dedup_ratio"] = round(self.dedup_ratio, 3)
        data["compression_ratio"] = round(self.compression_ratio, 3)
        return data


def repository_stats(repo: RepoCore) -> Stats:
    """Stats of the whole repository: snapshot records, listings and indexes."""
    out = Stats()
    snaps = repo.snapshots()
    out.snapshots = len(snaps)
    objects: dict[str, int] = {}
    groups: dict[str, int] = {}
    for key in repo.store.list(""):
        obj = parse_group_key(key)
        kind = obj.kind if obj else key.split("/")[0]
        objects[kind] = objects.get(kind, 0) + 1
        if obj:
            groups[obj.group] = groups.get(obj.group, 0) + 1
    out.objects = dict(sorted(objects.items()))
    out.groups = len(groups)
    for _name, size, _mtime in repo.store.list_temporary():  # left by killed writes
        out.temporary_objects += 1
        out.temporary_bytes += size
    for snap in snaps:
        if snap.complete:
            out.files += snap.stats.get("files", 0)
            out.dirs += snap.stats.get("dirs", 0)
            out.symlinks += snap.stats.get("symlinks", 0)
            out.logical_bytes += snap.stats.get("bytes", 0)
    for gid in sorted(groups):
        index, _ = repo.load_index(gid)
        out.packs += len(index.packs)
        for loc in index.locations():
            _count_chunk(out, loc.otype, loc.raw_length, loc.length)
    return out


def snapshot_stats(repo: RepoCore, snapshot: Snapshot) -> Stats:
    """Stats of one snapshot: its files, and the distinct chunks and packs they use."""
    out = Stats(snapshot=snapshot.id, snapshots=1, groups=1)
    index, _ = repo.load_index(snapshot.group)
    seen: set[bytes] = set()
    packs: set[bytes] = set()

    def use(cid: bytes) -> None:
        if cid in seen:
            return
        seen.add(cid)
        loc = index.get(cid)
        if loc is None:
            out.missing_chunks += 1
            return
        packs.add(loc.pack_id)
        _count_chunk(out, loc.otype, loc.raw_length, loc.length)

    for cid in snapshot.filelist_ids():
        use(cid)
    for entry in repo.iter_entries(snapshot, index):
        if entry.kind == FILE:
            out.files += 1
            out.logical_bytes += entry.size
            for cid in entry.chunks:
                use(cid)
        elif entry.kind == DIR:
            out.dirs += 1
        elif entry.kind == SYMLINK:
            out.symlinks += 1
    out.packs = len(packs)
    out.objects = {"packs": len(packs), "snapshots": 1}
    return out


def _count_chunk(out: Stats, otype: int, raw_length: int, length: int) -> None:
    out.chunks += 1
    out.unique_bytes += raw_length
    out.stored_bytes += length
    if otype == ObjectType.DATA:
        out.unique_data_bytes += raw_length
