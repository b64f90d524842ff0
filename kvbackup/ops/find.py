"""Searching snapshots: entries whose name matches a glob, or files holding a given chunk.

A pattern without ``/`` is matched against an entry's name (its last path component); a
pattern with ``/`` against its whole path within the snapshot, as restic's ``find`` does.
Matching is by :func:`fnmatch.fnmatchcase`, on the path decoded with the file-system
encoding (so names that are not valid UTF-8 still match their escaped form).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..core.repo import RepoCore
from ..errors import KvbackupError
from ..format.snapshots import Snapshot
from ..sources import FILE


@dataclass(frozen=True)
class FindMatch:
    """One entry found: where it is, what it is, and (for a chunk search) which chunks."""

    snapshot: str
    host: str
    source: str
    path: str
    kind: str
    size: int
    mtime_ns: int
    #: For a chunk search: the matching chunks, each ``{"id", "pack", "offset", "length"}``.
    chunks: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "snapshot": self.snapshot,
            "host": self.host,
            "source": self.source,
            "path": self.path,
            "type": self.kind,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
        }
        if self.chunks:
            data["chunks"] = self.chunks
        return data


class NamePattern:
    """Globs matched against entry names (or whole paths, for globs holding ``/``)."""

    def __init__(self, patterns: Iterable[str], ignore_case: bool = False):
        self.ignore_case = ignore_case
        self.patterns = [self._fold(p.strip("/") if "/" in p else p) for p in patterns]
        if not self.patterns:
            raise KvbackupError("give at least one pattern to find")

    def _fold(self, text: str) -> str:
        return text.lower() if self.ignore_case else text

    def matches(self, path: str) -> bool:
        path = self._fold(path)
        name = path.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatchcase(path if "/" in p else name, p) for p in self.patterns)


def find_names(
    repo: RepoCore,
    snapshots: Iterable[Snapshot],
    pattern: NamePattern,
    newest_ns: int | None = None,
    oldest_ns: int | None = None,
) -> Iterator[FindMatch]:
    """Entries of ``snapshots`` whose name matches ``pattern`` and whose mtime lies within
    ``[oldest_ns, newest_ns]``, snapshot by snapshot, each in file-list order."""
    for snap in snapshots:
        for entry in repo.iter_entries(snap):
            if newest_ns is not None and entry.mtime_ns > newest_ns:
                continue
            if oldest_ns is not None and entry.mtime_ns < oldest_ns:
                continue
            path = os.fsdecode(entry.path)
            if pattern.matches(path):
                yield FindMatch(
                    snap.id, snap.host, snap.source, path, entry.kind, entry.size, entry.mtime_ns
                )


def find_chunks(
    repo: RepoCore, snapshots: Iterable[Snapshot], chunk_ids: Iterable[str]
) -> Iterator[FindMatch]:
    """Files of ``snapshots`` holding a chunk whose hex id starts with one of
    ``chunk_ids`` (a debugging aid: which files does a damaged chunk belong to?)."""
    prefixes = [c.lower() for c in chunk_ids]
    bad = [c for c in prefixes if not c or any(ch not in "0123456789abcdef" for ch in c)]
    if bad:
        raise KvbackupError(f"not a chunk id (hexadecimal): {bad[0]!r}")
    for snap in snapshots:
        index, _ = repo.load_index(snap.group)
        for entry in repo.iter_entries(snap, index):
            if entry.kind != FILE:
                continue
            hits = []
            for cid in entry.chunks:
                hexid = cid.hex()
                if any(hexid.startswith(p) for p in prefixes):
                    loc = index.get(cid)
                    hits.append(
                        {
                            "id": hexid,
                            "pack": loc.pack_id.hex() if loc else None,
                            "offset": loc.offset if loc else None,
                            "length": loc.length if loc else None,
                        }
                    )
            if hits:
                yield FindMatch(
                    snap.id,
                    snap.host,
                    snap.source,
                    os.fsdecode(entry.path),
                    entry.kind,
                    entry.size,
                    entry.mtime_ns,
                    hits,
                )
