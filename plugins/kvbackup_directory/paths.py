"""Several folders and files in one snapshot, each kept under its absolute path."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator

from kvbackup.errors import SourceError, SourceNotFoundError
from kvbackup.sources import DIR, Entry, ErrorCallback

from .source import DirectorySource, make_entry


def _key(path: bytes) -> bytes:
    return path.replace(b"/", b"\0")


class PathsSource(DirectorySource):
    """Folders and single files given by path. Each is stored under its absolute path
    without the leading ``/`` (``/home/ann/notes.txt`` as ``home/ann/notes.txt``), with the
    folders on the way, so that every one is restored under its own path. A path inside
    another given path is backed up once. Exclude patterns are anchored at each given folder.
    """

    def __init__(
        self, paths: Iterable[str | bytes | os.PathLike[str]], one_file_system: bool = False
    ) -> None:
        roots: set[bytes] = set()
        for path in paths:
            raw = os.fsencode(path)
            if not raw:
                raise SourceError("an empty path cannot be backed up")
            full = os.path.normpath(os.path.abspath(raw))
            if not os.path.lexists(full):
                raise SourceNotFoundError(f"{os.fsdecode(raw)}: no such file or directory")
            roots.add(full)
        if not roots:
            raise SourceError("no path to back up")
        nested = {r for r in roots for o in roots if r != o and r.startswith(o.rstrip(b"/") + b"/")}
        self.roots = sorted((r for r in roots - nested), key=lambda r: _key(r.lstrip(b"/")))
        self.root = b"/"
        self.identity = ", ".join(os.fsdecode(r) for r in self.roots)
        self._one_fs = one_file_system
        self.excludes = None
        self.warnings = []
        self._links = {}

    def scan(self, on_error: ErrorCallback) -> Iterator[Entry]:
        made: set[bytes] = set()
        for root in self.roots:
            rel = root.lstrip(b"/")
            if not rel:  # the root folder itself
                yield from self.walk(root, b"", on_error)
                continue
            parts = rel.split(b"/")
            for i in range(1, len(parts)):
                ancestor = b"/".join(parts[:i])
                if ancestor in made:
                    continue
                made.add(ancestor)
                try:
                    st = os.lstat(b"/" + ancestor)
                except OSError as exc:
                    on_error(ancestor, exc)
                    continue
                parent = make_entry(ancestor, st, b"/" + ancestor)
                parent.kind, parent.size = DIR, 0
                yield parent
            try:
                st = os.lstat(root)
            except OSError as exc:
                on_error(rel, exc)
                continue
            entry = self._entry(rel, os.path.basename(rel), root, st, on_error)
            if entry is None:
                continue
            made.add(rel)
            yield entry
            if stat.S_ISDIR(st.st_mode):
                yield from self.walk(root, rel, on_error)
