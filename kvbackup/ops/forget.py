"""Forget: remove snapshot records, by retention rules or by name.

Only records are removed (``.open`` first, then the final record: a forget killed between
the two leaves a complete snapshot, which a rerun removes). The data they used is freed by
:mod:`kvbackup.ops.prune`. Forget holds the exclusive lock, so it never races a prune.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.locks import RepositoryLock, acquire_exclusive
from ..core.selection import SnapshotFilter, pick
from ..errors import ExitCode, KvbackupError
from ..format.layout import snapshot_key
from ..format.snapshots import Snapshot
from .prune import PruneResult, run_prune
from .retention import Candidate, RetentionPolicy, apply_policy, grouping_key

if TYPE_CHECKING:
    from ..core.repo import RepoCore

DEFAULT_GROUP_BY = ("host", "source")


class EmptyRetentionError(KvbackupError):
    """Retention rules would remove every snapshot of a source (``--allow-empty`` allows)."""

    exit_code = ExitCode.USAGE


@dataclass
class ForgetItem:
    """A snapshot forget looked at, and why it stays or goes."""

    id: str
    time: str
    host: str
    source: str
    group: str
    state: str
    tags: list[str]
    keep: bool
    reasons: list[str]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ForgetResult:
    """What was kept and removed (or, with ``dry_run``, would be)."""

    kept: list[ForgetItem] = field(default_factory=list)
    removed: list[ForgetItem] = field(default_factory=list)
    dry_run: bool = False
    prune: PruneResult | None = None
    requests: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "kept": [i.as_dict() for i in self.kept],
            "removed": [i.as_dict() for i in self.removed],
            "dry_run": self.dry_run,
            "prune": self.prune.as_dict() if self.prune else None,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
        }


def _item(snap: Snapshot, keep: bool, reasons: list[str]) -> ForgetItem:
    return ForgetItem(
        snap.id,
        _when(snap.time).strftime("%Y-%m-%dT%H:%M:%SZ"),
        snap.host,
        snap.source,
        snap.group,
        snap.state,
        snap.tags,
        keep,
        reasons,
    )


def _when(value: object) -> dt.datetime:
    """A record's time as an aware UTC datetime (records keep ``YYYY-mm-ddTHH:MM:SSZ``)."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc)
    return dt.datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def decide(
    snaps: Sequence[Snapshot],
    policy: RetentionPolicy,
    group_by: Sequence[str] = DEFAULT_GROUP_BY,
    allow_empty: bool = False,
) -> tuple[list[ForgetItem], list[ForgetItem]]:
    """Apply ``policy`` per grouping; return (kept, removed), oldest first."""
    if policy.empty:
        raise KvbackupError(
            "no retention rule given (e.g. --keep-last 7 --keep-daily 14): nothing removed"
        )
    by_id = {s.id: s for s in snaps}
    groupings: dict[tuple[Any, ...], list[Candidate]] = defaultdict(list)
    for s in snaps:
        groupings[grouping_key(group_by, s.host, s.source, s.tags)].append(
            Candidate(
                s.id,
                _when(s.time),
                s.complete,
                frozenset(s.tags),
                s.group,
                (s.host, s.source),
            )
        )
    kept: list[ForgetItem] = []
    removed: list[ForgetItem] = []
    for key, cands in groupings.items():
        decisions = apply_policy(cands, policy)
        had_complete = any(c.complete for c in cands)
        emptied = had_complete and not any(d.keep and d.candidate.complete for d in decisions)
        if emptied and not allow_empty:
            what = ", ".join(f"{n} {v or '(none)'}" for n, v in zip(group_by, key, strict=True))
            what = what or "the repository"
            raise EmptyRetentionError(
                f"the rules ({policy.describe()}) would remove every snapshot of {what}: "
                "nothing removed (add --allow-empty if that is what you want)"
            )
        for d in decisions:
            (kept if d.keep else removed).append(_item(by_id[d.candidate.id], d.keep, d.reasons))
    kept.sort(key=lambda i: i.id)
    removed.sort(key=lambda i: i.id)
    return kept, removed


def run_forget(
    repo: RepoCore,
    policy: RetentionPolicy | None = None,
    snapshots: Sequence[str] = (),
    *,
    group_by: Sequence[str] = DEFAULT_GROUP_BY,
    select: SnapshotFilter | None = None,
    dry_run: bool = False,
    allow_empty: bool = False,
    prune: bool = False,
    prune_options: dict[str, Any] | None = None,
) -> ForgetResult:
    """Forget snapshots named in ``snapshots``, or those ``policy`` does not keep; then,
    with ``prune``, free the data nothing uses any more
    (:func:`kvbackup.ops.prune.run_prune`)."""
    started = time.time()
    before = repo.counts.as_dict()
    if bool(snapshots) == bool(policy and not policy.empty):
        raise KvbackupError("give either snapshot ids or retention rules (--keep-...), not both")
    lock: RepositoryLock | None = None if dry_run else acquire_exclusive(repo, "forget")
    try:
        listing = repo.snapshots()
        chosen = (select or SnapshotFilter()).apply(listing)
        if snapshots:
            named = {pick(chosen, spec, complete_only=False).id for spec in snapshots}
            kept = [_item(s, True, []) for s in chosen if s.id not in named]
            removed = [_item(s, False, ["named"]) for s in chosen if s.id in named]
        else:
            assert policy is not None
            kept, removed = decide(chosen, policy, group_by, allow_empty)
        result = ForgetResult(kept, removed, dry_run)
        if not dry_run:
            assert lock is not None
            lock.check()
            present = set(repo.store.list("snapshots/"))
            for final in (False, True):  # .open first: what is left is still a snapshot
                keys = [snapshot_key(i.id, final) for i in removed]
                repo.map_parallel(repo.store.delete, [k for k in keys if k in present])
        if prune:
            result.prune = run_prune(
                repo,
                dry_run=dry_run,
                lock=lock,
                before=listing,
                forgotten=[i.id for i in removed] if dry_run else (),
                **(prune_options or {}),
            )
    finally:
        if lock is not None:
            lock.release()
    after = repo.counts.as_dict()
    result.requests = {k: after[k] - before[k] for k in after}
    result.seconds = time.time() - started
    return result
