"""Restore a snapshot, or part of it, into a target folder.

Every entry name is checked before anything is written: no empty, ``.`` or ``..``
component, and no directory on the way that is a symlink (symlinks are created last, and
any found in the target beforehand are not followed), so a hostile repository cannot make
kvbackup write outside the target. Damaged chunks spoil only the files that use them: the
rest is restored and the damage reported.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..core.progress import Progress, ProgressEvent
from ..core.repo import RepoCore
from ..display import display_name
from ..errors import (
    CorruptionError,
    KvbackupError,
    PathNotFoundError,
    TargetNotWritableError,
    UnsafePathError,
)
from ..format.snapshots import Snapshot
from ..sources import DIR, FILE, SYMLINK, Entry, check_relative_path

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
#: Errors that no other file of the restore would escape: the restore stops at once.
_TARGET_FAILED = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
#: Errors that are the target's alone (exit code 19 when they are all there is); any other
#: (a folder where the snapshot has a link, a name too long) is the snapshot's doing.
_TARGET_REFUSED = {errno.EACCES, errno.EPERM}


@dataclass
class RestoreResult:
    """What was restored, and what could not be."""

    snapshot: Snapshot
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    #: How many of ``errors`` are the target's (permission denied), not the repository's.
    target_errors: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot.id,
            "files": self.files,
            "dirs": self.dirs,
            "symlinks": self.symlinks,
            "bytes": self.bytes,
            "errors": [{"path": p, "error": e} for p, e in self.errors],
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
        }


class Selection:
    """Which entries a restore takes: under given paths, matching include/exclude globs."""

    def __init__(self, paths: list[str | bytes], include: list[str], exclude: list[str]):
        self.paths = [_normalise(p) for p in paths]
        self.include = include
        self.exclude = exclude
        self.matched = [False] * len(self.paths)

    @property
    def everything(self) -> bool:
        return not (self.paths or self.include or self.exclude)

    def wants(self, path: bytes) -> bool:
        if self.paths:
            hit = False
            for i, p in enumerate(self.paths):
                if path == p or path.startswith(p + b"/"):
                    self.matched[i] = hit = True
            if not hit:
                return False
        text = os.fsdecode(path)
        if self.include and not any(_glob(text, g) for g in self.include):
            return False
        return not any(_glob(text, g) for g in self.exclude)

    def is_ancestor(self, path: bytes) -> bool:
        """``path`` is a directory on the way to a selected path."""
        return any(p.startswith(path + b"/") for p in self.paths)


def _normalise(path: str | bytes) -> bytes:
    raw = os.fsencode(path) if isinstance(path, str) else path
    return raw.strip(b"/")


def _glob(path: str, pattern: str) -> bool:
    """A glob matches the whole relative path, or any single name in it if it has no ``/``."""
    if "/" in pattern.strip("/"):
        return fnmatch.fnmatchcase(path, pattern.strip("/"))
    return any(fnmatch.fnmatchcase(part, pattern) for part in path.split("/"))


class _Target:
    """Safe creation of paths below the target root."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = os.fsencode(os.path.realpath(os.fspath(root)))
        try:
            os.makedirs(self.root, exist_ok=True)
            os.close(os.open(self.root, os.O_RDONLY | os.O_DIRECTORY))
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=b".kvbackup-probe-"):
                pass
        except OSError as exc:
            raise TargetNotWritableError(
                f"{display_name(self.root)}: restore target not writable: {exc.strerror or exc}"
            ) from None
        self._safe_dirs: set[bytes] = {b""}

    def path(self, rel: bytes) -> bytes:
        try:
            check_relative_path(rel)
        except ValueError:
            raise UnsafePathError(
                f'refusing entry "{display_name(rel)}": its name would escape the restore target'
            ) from None
        return os.path.join(self.root, rel)

    def parent_dir(self, rel: bytes) -> None:
        """Make sure the parent of ``rel`` is a real directory inside the root."""
        missing = []  # the ancestors not yet checked, nearest first (no recursion: deep trees)
        parent = rel.rpartition(b"/")[0]
        while parent not in self._safe_dirs:
            missing.append(parent)
            parent = parent.rpartition(b"/")[0]
        for parent in reversed(missing):
            full = os.path.join(self.root, parent)
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                os.mkdir(full, 0o700)
                st = os.lstat(full)
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafePathError(
                    f'refusing entry "{display_name(rel)}": "{display_name(parent)}" is not a '
                    "directory"
                )
            self._safe_dirs.add(parent)

    def mkdir(self, rel: bytes) -> None:
        full = self.path(rel)
        self.parent_dir(rel)
        try:
            os.mkdir(full, 0o700)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(full).st_mode):
                raise UnsafePathError(
                    f"{display_name(rel)}: exists and is not a directory"
                ) from None
        self._safe_dirs.add(rel)


_AS_ROOT = os.geteuid() == 0
_OWNER = (os.geteuid(), os.getegid())


def _apply_metadata(path: bytes, entry: Entry, is_link: bool = False) -> None:
    """Owner (as root), mode and mtime of ``entry`` onto ``path``, not following links."""
    if _AS_ROOT and entry.uid >= 0 and (entry.uid, entry.gid) != _OWNER:
        with contextlib.suppress(OSError):
            os.lchown(path, entry.uid, entry.gid)
    if not is_link:
        os.chmod(path, stat.S_IMODE(entry.mode))
    os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=not is_link)


def _apply_metadata_fd(fd: int, entry: Entry) -> None:
    """The same, through an open file: no path is looked up again."""
    if _AS_ROOT and entry.uid >= 0 and (entry.uid, entry.gid) != _OWNER:
        with contextlib.suppress(OSError):
            os.fchown(fd, entry.uid, entry.gid)
    os.fchmod(fd, stat.S_IMODE(entry.mode))
    os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))


def run_restore(
    repo: RepoCore,
    snapshot: Snapshot,
    target: str | os.PathLike[str],
    *,
    paths: list[str | bytes] | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore ``snapshot`` under ``target``; see :meth:`Repository.restore`."""
    started = time.time()
    result = RestoreResult(snapshot)
    selection = Selection(paths or [], include or [], exclude or [])
    out = _Target(target)
    index, _ = repo.load_index(snapshot.group)
    dirs: list[Entry] = []
    links: list[Entry] = []

    def fail(entry: Entry | bytes, exc: Exception) -> None:
        path = entry.path if isinstance(entry, Entry) else entry
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
            if exc.errno in _TARGET_FAILED:
                raise TargetNotWritableError(f"{display_name(path)}: {reason}") from None
            if exc.errno in _TARGET_REFUSED:
                result.target_errors += 1
            result.errors.append((display_name(path), reason))
            return
        result.errors.append((display_name(path), str(exc)))

    def chunks_to_fetch() -> Iterator[tuple[tuple[Entry, int], bytes]]:
        def damaged_list(cid: bytes, exc: KvbackupError) -> None:
            if not cid:  # a malformed entry, already named
                result.errors.append(("(file list)", str(exc)))
                return
            result.errors.append(
                (
                    "(file list)",
                    f"snapshot {snapshot.id}: file list: {exc}; the entries it held are not "
                    "restored",
                )
            )

        for entry in repo.iter_entries(snapshot, index, on_damage=damaged_list):
            if not (selection.everything or selection.wants(entry.path)):
                continue
            try:
                if entry.kind == DIR:
                    out.mkdir(entry.path)
                    dirs.append(entry)
                elif entry.kind == SYMLINK:
                    out.path(entry.path)
                    links.append(entry)
                elif entry.kind == FILE:
                    out.path(entry.path)
                    out.parent_dir(entry.path)
                    if not entry.chunks:  # (one claiming bytes is refused when read)
                        _write_empty(out, entry, result)
                    for i, cid in enumerate(entry.chunks):
                        yield (entry, i), cid
            except (OSError, KvbackupError) as exc:
                fail(entry, exc)

    writer = _FileWriter(out, result, fail)
    last_report = 0.0
    try:
        for (entry, i), data in repo.fetch_chunks(snapshot.group, index, chunks_to_fetch()):
            writer.write(entry, i, data)
            if progress and time.monotonic() - last_report > 0.2:
                last_report = time.monotonic()
                progress(
                    ProgressEvent(
                        "restore", result.files, result.bytes, result.bytes, os.fsdecode(entry.path)
                    )
                )
    finally:
        writer.close()
    for entry in links:
        try:
            out.parent_dir(entry.path)
            full = out.path(entry.path)
            if os.path.lexists(full):
                os.unlink(full)
            os.symlink(entry.target or b"", full)
            _apply_metadata(full, entry, is_link=True)
            result.symlinks += 1
        except (OSError, KvbackupError, ValueError, OverflowError) as exc:
            fail(entry, exc)
    for entry in reversed(dirs):
        try:
            _apply_metadata(out.path(entry.path), entry)
            result.dirs += 1
        except (OSError, KvbackupError, ValueError, OverflowError) as exc:
            fail(entry, exc)
    for path, hit in zip(selection.paths, selection.matched, strict=False):
        if not hit:
            raise PathNotFoundError(f"{display_name(path)}: not in snapshot {snapshot.id}")
    result.requests = repo.counts.as_dict()
    result.seconds = time.time() - started
    return result


def _write_empty(out: _Target, entry: Entry, result: RestoreResult) -> None:
    fd = os.open(out.path(entry.path), _OPEN_FLAGS, 0o600)
    try:
        _apply_metadata_fd(fd, entry)
    finally:
        os.close(fd)
    result.files += 1


class _FileWriter:
    """Writes fetched chunks into their files, in order, one file open at a time.

    A file is kept only if it received every chunk, in order, and has the size the file
    list records; otherwise it is removed and reported, never left with wrong bytes.
    """

    def __init__(self, out: _Target, result: RestoreResult, fail: Any):
        self.out, self.result, self.fail = out, result, fail
        self.entry: Entry | None = None
        self.fd = -1
        self.damaged = False
        self.next_chunk = 0
        self.written = 0

    def write(self, entry: Entry, i: int, data: bytes | KvbackupError) -> None:
        if i == 0:
            self._finish()
            self.entry, self.damaged, self.next_chunk, self.written = entry, False, 0, 0
            try:
                self.fd = os.open(self.out.path(entry.path), _OPEN_FLAGS, 0o600)
            except OSError as exc:
                self.fail(entry, exc)
                self.damaged = True
        if self.damaged:
            return
        if entry is not self.entry or i != self.next_chunk:
            raise RuntimeError(
                f"restore: chunk {i} of {display_name(entry.path)} arrived out of order"
            )
        self.next_chunk += 1
        if isinstance(data, KvbackupError):
            self.fail(entry, data)
            self.damaged = True
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            self.damaged = True
            self.fail(entry, exc)  # a full disk stops the restore here
            return
        self.written += len(data)
        self.result.bytes += len(data)

    def _finish(self) -> None:
        entry, self.entry = self.entry, None
        if entry is None:
            return
        fd, self.fd = self.fd, -1
        if not self.damaged and (
            self.next_chunk != len(entry.chunks) or self.written != entry.size
        ):
            self.fail(
                entry,
                CorruptionError(
                    f"restored {self.written} bytes in {self.next_chunk} chunks, the file list "
                    f"says {entry.size} bytes in {len(entry.chunks)} chunks"
                ),
            )
            self.damaged = True
        if not self.damaged:
            try:
                _apply_metadata_fd(fd, entry)
                self.result.files += 1
            except OSError as exc:
                self.fail(entry, exc)
        if fd >= 0:
            os.close(fd)
        if self.damaged and fd >= 0:
            with contextlib.suppress(OSError):
                os.unlink(self.out.path(entry.path))  # never leave a partial file behind

    def close(self) -> None:
        self._finish()
