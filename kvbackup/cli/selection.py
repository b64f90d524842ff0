"""Choosing snapshots on the command line: ids, hosts and source paths."""

from __future__ import annotations

import os
from typing import Any


def select_snapshots(
    repo: Any, ids: tuple[str, ...], hosts: tuple[str, ...], paths: tuple[str, ...]
) -> list[Any]:
    """The complete snapshots named by ``ids`` (all if none), of ``hosts`` and sources
    ``paths`` if given, oldest first."""
    if ids:
        snaps = {s.id: s for s in (repo.resolve_snapshot(i) for i in ids)}
        chosen = sorted(snaps.values(), key=lambda s: s.id)
    else:
        chosen = [s for s in repo.snapshots() if s.complete]
    if hosts:
        chosen = [s for s in chosen if s.host in hosts]
    if paths:
        wanted = {p.rstrip("/") or "/" for p in paths}
        wanted |= {os.path.abspath(p) for p in wanted}
        chosen = [s for s in chosen if s.source in wanted]
    return chosen
