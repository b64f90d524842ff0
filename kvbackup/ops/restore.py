"""Restore a snapshot, or part of it, into a target folder.

Every entry name is checked before anything is written: no empty, ``.`` or ``..``
component, and no directory on the way that is a symlink (symlinks are created last, and
any found in the target beforehand are not followed), so a hostile repository cannot make
kvbackup write outside the target. Files are written to a temporary name and renamed into
place when complete (:mod:`kvbackup.ops.restore_target`); an entry that already exists is
handled by the overwrite policy (:mod:`kvbackup.ops.overwrite`). Damaged chunks spoil only the
files that use them: the rest is restored, the damage reported, and a file already at a
damaged file's path is left as it was.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..core.progress import Progress, ProgressEvent
from ..core.repo import RepoCore
from ..display import display_name
from ..errors import KvbackupError, PathNotFoundError, TargetNotWritableError, UnsafePathError
from ..format.index import GroupIndex
from ..format.snapshots import Snapshot
from ..metadata import AS_ROOT, apply_metadata
from ..sources import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SPECIAL_KINDS, SYMLINK, Entry
from ..trees import remove_tree
from . import overwrite
from .restore_target import (
    DEFAULT_WRITERS,
    FileWriter,
    RestoreFile,
    RestoreTarget,
    ThreadedFileWriter,
    is_temp_name,
)

#: At most this many paths are listed in a result (kept, deleted, planned); all are counted.
MAX_LISTED = 10_000
#: Errors that no other file of the restore would escape: the restore stops at once.
_TARGET_FAILED = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
#: Errors that are the target's alone (exit code 19 when they are all there is); any other
#: (a folder where the snapshot has a link, a name too long) is the snapshot's doing.
_TARGET_REFUSED = {errno.EACCES, errno.EPERM}


@dataclass
class RestoreResult:
    """What was restored, what was left as it was, and what could not be restored.

    ``kept`` lists entries the overwrite policy protected (path, reason); ``unchanged``
    counts entries the target already held; ``deleted`` lists what ``delete`` removed;
    ``planned`` is what a dry run would do, as (action, path) pairs.
    """

    snapshot: Snapshot
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    special: int = 0
    bytes: int = 0
    unchanged: int = 0
    dry_run: bool = False
    kept: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    planned: list[tuple[str, str]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
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
            "hardlinks": self.hardlinks,
            "special": self.special,
            "bytes": self.bytes,
            "unchanged": self.unchanged,
            "dry_run": self.dry_run,
            "kept": [{"path": p, "reason": r} for p, r in self.kept],
            "deleted": self.deleted,
            "planned": [{"action": a, "path": p} for a, p in self.planned],
            "errors": [{"path": p, "error": e} for p, e in self.errors],
            "warnings": self.warnings,
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

    def wants(self, path: bytes, record: bool = True) -> bool:
        if self.paths:
            hit = False
            for i, p in enumerate(self.paths):
                if path == p or path.startswith(p + b"/"):
                    hit = True
                    if record:
                        self.matched[i] = True
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


def run_restore(
    repo: RepoCore,
    snapshot: Snapshot,
    target: str | os.PathLike[str],
    *,
    paths: list[str | bytes] | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    progress: Progress | None = None,
    overwrite_policy: str = overwrite.DEFAULT,
    delete: bool = False,
    dry_run: bool = False,
    verify: bool = False,
    writers: int = DEFAULT_WRITERS,
) -> RestoreResult:
    """Restore ``snapshot`` under ``target``; see :meth:`Repository.restore`.

    ``writers``: how many of the threads that fetch and decode chunks also write them
    into their files at once (``0``: the calling thread writes every chunk, in order).
    """
    overwrite.check_policy(overwrite_policy)
    started = time.time()
    result = RestoreResult(snapshot, dry_run=dry_run)
    selection = Selection(paths or [], include or [], exclude or [])
    out = RestoreTarget(target, dry_run=dry_run)
    index, _ = repo.load_index(snapshot.group)
    dirs: list[Entry] = []
    deferred: list[Entry] = []  # symlinks, hard links and special files: made last
    present: set[bytes] | None = set() if delete else None
    restored: set[bytes] = set()  # hard-linked files now at their path with their content
    linked: set[bytes] = set()  # hard-linked files selected, the others linked to them

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

    def plan(action: str, path: bytes) -> None:
        if len(result.planned) < MAX_LISTED:
            result.planned.append((action, display_name(path)))

    def decide(entry: Entry) -> bool:
        """Apply the overwrite policy; ``True`` if the entry is to be written."""
        decision, why = overwrite.decide(overwrite_policy, entry, out.path(entry.path))
        if decision == overwrite.UNCHANGED:
            result.unchanged += 1
            if entry.kind == FILE and entry.nlink > 1:
                restored.add(entry.path)
            return False
        if decision == overwrite.KEEP:
            if entry.path in out.snapshot_dirs:
                raise UnsafePathError(
                    f"{display_name(entry.path)}: a {entry.kind} in the snapshot where it also "
                    "has a directory"
                )
            if len(result.kept) < MAX_LISTED:
                result.kept.append((display_name(entry.path), why))
            return False
        if dry_run:
            plan("hardlink" if entry.hardlink else entry.kind, entry.path)
            if entry.kind == FILE and entry.nlink > 1:
                restored.add(entry.path)
            return False
        return True

    def file_done(entry: Entry) -> None:
        if entry.nlink > 1:
            restored.add(entry.path)
        result.files += 1

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
            if present is not None:
                _add_with_parents(present, entry.path)
            try:
                if entry.kind == DIR:
                    if out.mkdir(entry.path) and dry_run:
                        plan(DIR, entry.path)
                    dirs.append(entry)
                elif entry.kind == FILE and entry.hardlink not in linked:
                    entry.hardlink = None  # its first path is not restored: write its bytes
                    if entry.nlink > 1:
                        linked.add(entry.path)
                    out.path(entry.path)
                    out.parent_dir(entry.path)
                    if not decide(entry):
                        continue
                    if not entry.chunks:
                        writer.write_empty(entry)
                    for i, cid in enumerate(entry.chunks):
                        yield (entry, i), cid
                else:
                    out.path(entry.path)
                    deferred.append(entry)
            except (OSError, KvbackupError) as exc:
                writer.fail(entry, exc)  # the writing threads report too: one at a time

    verifier = (lambda data, cid: repo.hasher(data) == cid) if verify else None
    writer: FileWriter | ThreadedFileWriter
    if writers > 0:
        writer = ThreadedFileWriter(out, fail, file_done, verifier, writers=writers)
        written = _written_by_threads(repo, snapshot, index, chunks_to_fetch(), writer)
    else:
        writer = FileWriter(out, fail, file_done, verifier)
        written = _written_in_order(repo, snapshot, index, chunks_to_fetch(), writer)
    last_report = 0.0
    try:
        for entry in written:
            if progress and time.monotonic() - last_report > 0.2:
                last_report = time.monotonic()
                progress(
                    ProgressEvent(
                        "restore",
                        result.files,
                        writer.bytes,
                        writer.bytes,
                        display_name(entry.path),
                    )
                )
        writer.close()
    except BaseException:
        writer.abort()
        raise
    result.bytes = writer.bytes
    for entry in deferred:
        try:
            out.parent_dir(entry.path)
            _restore_deferred(entry, out, result, restored, decide)
        except (OSError, KvbackupError, ValueError, OverflowError) as exc:
            fail(entry, exc)
    missing = [p for p, hit in zip(selection.paths, selection.matched, strict=False) if not hit]
    if present is not None and not missing:
        _delete_extra(out, selection, present, result)  # before folders get their times
    for entry in reversed(dirs):
        try:
            if not dry_run:
                apply_metadata(out.path(entry.path), entry)
            result.dirs += 1
        except (OSError, KvbackupError, ValueError, OverflowError) as exc:
            fail(entry, exc)
    if missing:
        raise PathNotFoundError(f"{display_name(missing[0])}: not in snapshot {snapshot.id}")
    result.requests = repo.counts.as_dict()
    result.seconds = time.time() - started
    return result


def _written_in_order(
    repo: RepoCore,
    snapshot: Snapshot,
    index: GroupIndex,
    chunks: Iterator[tuple[tuple[Entry, int], bytes]],
    writer: FileWriter,
) -> Iterator[Entry]:
    """Fetch ``chunks`` and write each into its file from this thread, in order."""
    for (entry, i), data in repo.fetch_chunks(snapshot.group, index, chunks):
        writer.write(entry, i, data)
        yield entry


def _written_by_threads(
    repo: RepoCore,
    snapshot: Snapshot,
    index: GroupIndex,
    chunks: Iterator[tuple[tuple[Entry, int], bytes]],
    writer: ThreadedFileWriter,
) -> Iterator[Entry]:
    """Fetch ``chunks``; the threads that fetch and decode a chunk also write it into its
    file, and commit the file after its last chunk. Every file is committed (or dropped)
    when this ends, so folders can be given their times after it."""
    locate = repo.chunk_locator(snapshot.group, index)

    def planned() -> Iterator[tuple[tuple[RestoreFile, int], bytes]]:
        job: RestoreFile | None = None
        for (entry, i), cid in chunks:
            if i == 0:
                locs = [locate(c) for c in entry.chunks]
                job = writer.add(entry, [loc.raw_length if loc else 0 for loc in locs])
            assert job is not None and job.entry is entry
            yield (job, i), cid

    for job, _ in repo.fetch_into(
        snapshot.group,
        index,
        planned(),
        lambda tag, data: writer.write(tag[0], tag[1], data),
        locate=locate,
    ):
        yield job.entry


def _restore_deferred(
    entry: Entry,
    out: RestoreTarget,
    result: RestoreResult,
    restored: set[bytes],
    decide: Callable[[Entry], bool],
) -> None:
    """A symlink, a hard link or a special file (made after every file is written)."""
    if entry.kind == FILE:  # a hard link to an earlier entry
        assert entry.hardlink is not None
        if entry.hardlink not in restored:
            if len(result.kept) < MAX_LISTED:
                reason = f"a hard link to {display_name(entry.hardlink)}, which was not restored"
                result.kept.append((display_name(entry.path), reason))
            return
        if decide(entry):
            out.hardlink(entry.hardlink, entry)
            result.hardlinks += 1
            restored.add(entry.path)
        return
    if entry.kind in SPECIAL_KINDS and entry.kind != FIFO and not AS_ROOT:
        result.warnings.append(
            f"{display_name(entry.path)}: a {entry.kind} node is recreated only as root"
        )
        return
    if not decide(entry):
        return
    if entry.kind == SYMLINK:
        out.symlink(entry)
        result.symlinks += 1
    elif entry.kind in SPECIAL_KINDS:
        kind = {FIFO: stat.S_IFIFO, CHARDEV: stat.S_IFCHR, BLOCKDEV: stat.S_IFBLK}[entry.kind]
        temp = out.temp_path(entry.path)
        os.mknod(temp, kind | 0o600, entry.rdev)
        try:
            apply_metadata(temp, entry)
            out.replace(temp, entry.path)
        except BaseException:
            os.unlink(temp)
            raise
        result.special += 1


def _add_with_parents(paths: set[bytes], path: bytes) -> None:
    while path and path not in paths:
        paths.add(path)
        path = path.rpartition(b"/")[0]


def _delete_extra(
    out: RestoreTarget, selection: Selection, present: set[bytes], result: RestoreResult
) -> None:
    """Remove what the target holds below the selection that the snapshot does not have.

    The walk is iterative and never follows a symlink; a folder that is not in the snapshot
    is removed whole. The target root itself is never removed.
    """
    stack: list[bytes] = [b""]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(os.path.join(out.root, rel)) as it:
                children = sorted((c.name, c.is_dir(follow_symlinks=False)) for c in it)
        except OSError as exc:
            result.errors.append((display_name(rel or b"."), f"cannot list for --delete: {exc}"))
            continue
        for name, is_dir in children:
            path = rel + b"/" + name if rel else name
            if path in present:
                if is_dir:
                    stack.append(path)
                continue
            if not (
                selection.everything
                or selection.wants(path, record=False)
                or (is_dir and selection.is_ancestor(path))
            ):
                continue
            if is_dir and selection.is_ancestor(path):
                stack.append(path)
                continue
            if is_temp_name(name) and out.dry_run:
                continue
            if len(result.deleted) < MAX_LISTED:
                result.deleted.append(display_name(path))
            if out.dry_run:
                result.planned.append(("delete", display_name(path)))
                continue
            full = os.path.join(out.root, path)
            try:
                if is_dir:
                    remove_tree(full)  # any depth; what it cannot remove it leaves
                    if os.path.lexists(full):
                        raise OSError(errno.ENOTEMPTY, "not everything below it could be removed")
                else:
                    os.unlink(full)
            except OSError as exc:
                result.errors.append((display_name(path), f"cannot delete: {exc.strerror or exc}"))
