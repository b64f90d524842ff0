"""Choosing snapshots on the command line: ids, and the --host/--tag/--path filters."""

from __future__ import annotations

from typing import Any

from ..core.selection import SnapshotFilter
from ..format.layout import snapshot_sort_key


def select_snapshots(repo: Any, ids: tuple[str, ...], select: SnapshotFilter) -> list[Any]:
    """The complete snapshots named by ``ids`` (all if none) that ``select`` matches,
    oldest first."""
    if ids:
        snaps = {s.id: s for s in (repo.resolve_snapshot(i) for i in ids)}
        chosen = sorted(snaps.values(), key=lambda s: snapshot_sort_key(s.id))
    else:
        chosen = [s for s in repo.snapshots() if s.complete]
    return select.apply(chosen)
