"""Choosing snapshots: ``--host``, ``--tag``, ``--path`` filters, ``latest``, id prefixes.

Filters combine like restic's: a snapshot matches if its host is one of the hosts given,
its source one of the paths given, and it carries every tag of at least one ``--tag``
value (``--tag a,b --tag c`` matches snapshots tagged a and b, or tagged c). An empty
filter matches everything. ``latest`` is the newest complete snapshot that matches.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import SnapshotNotFoundError
from ..format.layout import is_snapshot_id
from ..format.snapshots import Snapshot


def _normal_path(path: str) -> str:
    if "://" in path or path == "-":
        return path.rstrip("/") or path
    return os.path.normpath(os.path.abspath(os.path.expanduser(path)))


@dataclass(frozen=True)
class SnapshotFilter:
    """Which snapshots a command looks at."""

    hosts: frozenset[str] = frozenset()
    tags: tuple[frozenset[str], ...] = ()
    paths: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls, hosts: Iterable[str] = (), tags: Iterable[str] = (), paths: Iterable[str] = ()
    ) -> SnapshotFilter:
        """From command-line values: each tag value is a comma-separated set."""
        tag_sets = tuple(
            frozenset(t.strip() for t in value.split(",") if t.strip()) for value in tags
        )
        return cls(
            frozenset(hosts),
            tuple(s for s in tag_sets if s),
            frozenset(_normal_path(p) for p in paths),
        )

    @property
    def empty(self) -> bool:
        return not (self.hosts or self.tags or self.paths)

    def matches(self, snap: Snapshot) -> bool:
        if self.hosts and snap.host not in self.hosts:
            return False
        if (
            self.paths
            and snap.source not in self.paths
            and (_normal_path(snap.source) not in self.paths)
        ):
            return False
        return not self.tags or any(wanted <= set(snap.tags) for wanted in self.tags)

    def apply(self, snaps: Iterable[Snapshot]) -> list[Snapshot]:
        return [s for s in snaps if self.matches(s)]


def pick(snaps: Sequence[Snapshot], spec: str, complete_only: bool = True) -> Snapshot:
    """The snapshot ``spec`` names among ``snaps`` (oldest first): ``latest``, an id, or a
    unique id prefix."""
    pool = [s for s in snaps if s.complete or not complete_only]
    if spec == "latest":
        if not pool:
            raise SnapshotNotFoundError("no snapshot matches (the repository has none yet?)")
        return pool[-1]
    exact = [s for s in pool if s.id == spec]
    if exact:
        return exact[0]
    matches = [] if is_snapshot_id(spec) else [s for s in pool if s.id.startswith(spec)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise SnapshotNotFoundError(f"no snapshot {spec!r}")
    raise SnapshotNotFoundError(
        f"{spec!r} matches {len(matches)} snapshots: " + ", ".join(s.id for s in matches[:5])
    )
