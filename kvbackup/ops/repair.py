"""Repair a repository: rebuild index fragments from pack trailers, set aside unreadable
snapshot records.

Nothing is destroyed: an object set aside is first copied, unchanged, under
``quarantine/<its key>`` and only then removed from its place; a new index fragment is
written before any damaged one is set aside. A repair killed at any moment leaves the
repository at least as readable as before, and running it again finishes the job.

A repair (not a dry run) holds the exclusive lock, and refuses to start while a backup
runs: it could index the packs of a backup that has not written its index yet, or set
aside a snapshot record being written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.damage import unindexed_pack_tables
from ..core.locks import RepositoryLock, acquire_exclusive
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


@contextlib.contextmanager
def _holding_lock(repo: RepoCore, dry_run: bool) -> Iterator[RepositoryLock | None]:
    """The exclusive lock, refused while a backup runs (none for a dry run, which the
    facade runs under a read lock)."""
    if dry_run:
        yield None
        return
    lock = acquire_exclusive(repo, "repair", refuse_backups=True)
    try:
        yield lock
    finally:
        lock.release()


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
    with _holding_lock(repo, dry_run) as lock:
        if not groups:
            groups = sorted(
                {key.split("/")[1] for key in repo.store.list("groups/") if key.count("/") >= 2}
            )
        for gid in groups:
            result.groups.append(_repair_group(repo, gid, lock))
    return result


def _repair_group(repo: RepoCore, gid: str, lock: RepositoryLock | None) -> IndexRepair:
    dry_run = lock is None
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
    if tables and lock is not None:
        lock.check()
        out.new_fragment = repo.write_index_fragment(gid, tables)
    for key, reason in damaged:
        if lock is not None:
            lock.check()
        moved = QUARANTINE_PREFIX + key if dry_run else set_aside(repo, key)
        out.set_aside.append(SetAside(key, moved, reason))
    return out


def repair_snapshots(repo: RepoCore, dry_run: bool = False) -> RepairResult:
    """Set aside every snapshot record that cannot be read (an unreadable final record
    leaves the snapshot incomplete if its ``.open`` record is sound)."""
    result = RepairResult(dry_run=dry_run)
    with _holding_lock(repo, dry_run) as lock:
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
                if lock is not None:
                    lock.check()
                moved = QUARANTINE_PREFIX + key if dry_run else set_aside(repo, key)
                result.set_aside.append(SetAside(key, moved, str(exc)))
    return result
