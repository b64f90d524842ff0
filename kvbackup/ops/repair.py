"""Repair a repository: rebuild index fragments from pack trailers, set aside unreadable
snapshot records.

Nothing is destroyed: an object set aside is first copied, unchanged, under
``quarantine/<its key>`` and only then removed from its place; a new index fragment is
written before any damaged one is set aside. A repair killed at any moment leaves the
repository at least as readable as before, and running it again finishes the job.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.damage import unindexed_pack_tables
from ..errors import CorruptionError, KeyNotFoundError
from ..format.layout import (
    QUARANTINE_PREFIX,
    SNAPSHOTS_PREFIX,
    index_prefix,
    parse_snapshot_key,
)

if TYPE_CHECKING:
    from ..core.repo import RepoCore


@dataclass
class SetAside:
    """An object moved to ``quarantine/``, and why."""

    key: str
    moved_to: str
    reason: str


@dataclass
class IndexRepair:
    """What ``repair index`` did to one group."""

    group: str
    fragments: int = 0
    packs_indexed: int = 0
    chunks_indexed: int = 0
    new_fragment: str | None = None
    set_aside: list[SetAside] = field(default_factory=list)
    unreadable_packs: list[str] = field(default_factory=list)


@dataclass
class RepairResult:
    """What a repair found and did (with ``dry_run``: would do)."""

    dry_run: bool = False
    groups: list[IndexRepair] = field(default_factory=list)
    snapshots_checked: int = 0
    set_aside: list[SetAside] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.set_aside or any(g.set_aside or g.packs_indexed for g in self.groups))

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["changed"] = self.changed
        return data


def set_aside(repo: RepoCore, key: str) -> str:
    """Copy ``key`` unchanged to ``quarantine/<key>``, then remove it; return the new key."""
    target = QUARANTINE_PREFIX + key
    repo.store.put(target, repo.store.get(key))
    repo.store.delete(key)
    return target


def repair_index(
    repo: RepoCore, groups: list[str] | None = None, dry_run: bool = False
) -> RepairResult:
    """Rebuild the index of each group (every group if ``groups`` is empty): packs that no
    readable index fragment names are read from their trailers and indexed in a new
    fragment; unreadable fragments are set aside."""
    result = RepairResult(dry_run=dry_run)
    if not groups:
        groups = sorted(
            {key.split("/")[1] for key in repo.store.list("groups/") if key.count("/") >= 2}
        )
    for gid in groups:
        result.groups.append(_repair_group(repo, gid, dry_run))
    return result


def _repair_group(repo: RepoCore, gid: str, dry_run: bool) -> IndexRepair:
    out = IndexRepair(gid)
    keys = sorted(repo.store.list(index_prefix(gid)))
    out.fragments = len(keys)
    known: set[bytes] = set()
    damaged: list[tuple[str, str]] = []
    for key in keys:
        try:
            for pack_id, _blobs in repo.read_index_fragment(key):
                known.add(pack_id)
        except KeyNotFoundError:
            continue
        except CorruptionError as exc:
            damaged.append((key, str(exc)))
    tables, unreadable = unindexed_pack_tables(repo, gid, known)
    out.unreadable_packs = unreadable
    out.packs_indexed = len(tables)
    out.chunks_indexed = sum(len(blobs) for _, blobs in tables)
    if tables and not dry_run:
        out.new_fragment = repo.write_index_fragment(gid, tables)
    for key, reason in damaged:
        moved = QUARANTINE_PREFIX + key if dry_run else set_aside(repo, key)
        out.set_aside.append(SetAside(key, moved, reason))
    return out


def repair_snapshots(repo: RepoCore, dry_run: bool = False) -> RepairResult:
    """Set aside every snapshot record that cannot be read (an unreadable final record
    leaves the snapshot incomplete if its ``.open`` record is sound)."""
    result = RepairResult(dry_run=dry_run)
    for key in sorted(repo.store.list(SNAPSHOTS_PREFIX)):
        parsed = parse_snapshot_key(key)
        if parsed is None:
            continue  # not a snapshot record; verify warns about it
        result.snapshots_checked += 1
        try:
            repo.load_snapshot(*parsed)
        except KeyNotFoundError:
            continue
        except CorruptionError as exc:
            moved = QUARANTINE_PREFIX + key if dry_run else set_aside(repo, key)
            result.set_aside.append(SetAside(key, moved, str(exc)))
    return result
