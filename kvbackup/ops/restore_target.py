"""Writing below a restore target without surprises.

Every file is written to a temporary name in its own folder and renamed into place only
when it is complete (every chunk arrived and verified, the size is right, and with
``verify`` what was written has been read back and hashed again). A rename replaces the
directory entry, never the file it named: a pre-existing hard link to a file outside the
target, or a symlink, is replaced, never written through; and a file that cannot be
completed leaves whatever was at its path untouched.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import stat
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..display import display_name
from ..errors import CorruptionError, KvbackupError, TargetNotWritableError, UnsafePathError
from ..metadata import apply_metadata, apply_metadata_fd
from ..sources import Entry, check_relative_path

TEMP_PREFIX = b".kvbackup-"
TEMP_SUFFIX = b".tmp"
_CREATE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_REOPEN = os.O_RDWR | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_HOLE_BLOCK = 4096


def is_temp_name(name: bytes) -> bool:
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


class RestoreTarget:
    """Safe creation of paths below the target root."""

    def __init__(self, root: str | os.PathLike[str], dry_run: bool = False):
        self.dry_run = dry_run
        self.root = os.fsencode(os.path.realpath(os.fspath(root)))
        if not dry_run:
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
        #: Directories this restore made or took from the snapshot.
        self.snapshot_dirs: set[bytes] = set()

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
                self.snapshot_dirs.add(parent)
                if self.dry_run:
                    self._safe_dirs.add(parent)
                    continue
                os.mkdir(full, 0o700)
                st = os.lstat(full)
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafePathError(
                    f'refusing entry "{display_name(rel)}": "{display_name(parent)}" is not a '
                    "directory"
                )
            self._safe_dirs.add(parent)

    def mkdir(self, rel: bytes) -> bool:
        """Make the directory ``rel``; ``True`` if it was made, ``False`` if it existed."""
        full = self.path(rel)
        self.parent_dir(rel)
        made = True
        try:
            if self.dry_run:
                os.lstat(full)
                made = False
            else:
                os.mkdir(full, 0o700)
        except FileNotFoundError:
            pass
        except FileExistsError:
            made = False
        if not made and not stat.S_ISDIR(os.lstat(full).st_mode):
            raise UnsafePathError(f"{display_name(rel)}: exists and is not a directory")
        self._safe_dirs.add(rel)
        self.snapshot_dirs.add(rel)
        return made

    def temp_path(self, rel: bytes) -> bytes:
        """A fresh temporary name in the folder of ``rel``."""
        parent = rel.rpartition(b"/")[0]
        name = TEMP_PREFIX + secrets.token_hex(8).encode() + TEMP_SUFFIX
        return os.path.join(self.root, parent, name)

    def create_temp(self, rel: bytes) -> tuple[int, bytes]:
        """An open, new, private file at a temporary name beside ``rel``."""
        self.parent_dir(rel)
        return self.open_temp(rel)

    def open_temp(self, rel: bytes) -> tuple[int, bytes]:
        """:meth:`create_temp` for a ``rel`` whose folder :meth:`parent_dir` has already
        made sure of (safe from any thread: nothing is looked up or recorded)."""
        temp = self.temp_path(rel)
        return os.open(temp, _CREATE, 0o600), temp

    def replace(self, temp: bytes, rel: bytes) -> None:
        """Move ``temp`` to ``rel``: replaces a file, symlink or hard link, never follows it."""
        os.rename(temp, self.path(rel))

    def symlink(self, entry: Entry) -> None:
        """Create the symlink ``entry`` at a temporary name and rename it into place."""
        self.parent_dir(entry.path)
        temp = self.temp_path(entry.path)
        os.symlink(entry.target or b"", temp)
        try:
            apply_metadata(temp, entry, is_link=True)
            self.replace(temp, entry.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def hardlink(self, existing_rel: bytes, entry: Entry) -> None:
        """Link ``entry`` to the already restored ``existing_rel``, replacing what is there."""
        self.parent_dir(entry.path)
        temp = self.temp_path(entry.path)
        os.link(self.path(existing_rel), temp, follow_symlinks=False)
        try:
            self.replace(temp, entry.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise


Verifier = Callable[[bytes, bytes], bool]

#: How many threads write into files at once by default: 0, the calling thread writes
#: every file in order (:class:`FileWriter`); threads that write (:class:`ThreadedFileWriter`)
#: cost more CPU and were not faster on a 2-core machine (docs/performance.md, "Round 4").
DEFAULT_WRITERS = 0
#: At most this many temporary files are held open between chunks; the least recently
#: written is closed and opened again by its name when its next chunk comes.
DEFAULT_MAX_OPEN = 64


class RestoreFile:
    """One file being restored: where each of its chunks goes, and its temporary file.

    Its chunks may be written by several threads, in any order; ``lock`` keeps its opening,
    its writes, its commit and an abort of the restore from overlapping.
    """

    __slots__ = (
        "damaged", "entry", "error", "fd", "finished", "lengths", "lock", "offsets", "pending",
        "temp", "written",
    )  # fmt: skip

    def __init__(self, entry: Entry, lengths: list[int]):
        self.entry = entry
        self.lengths = lengths
        self.offsets = list(itertools.accumulate(lengths, initial=0))[:-1]
        self.lock = threading.Lock()
        self.fd = -1  # -1 while not open (not created yet, or closed to bound open files)
        self.temp = b""
        self.pending = len(lengths)  # chunks not yet written (or found damaged)
        self.written = 0
        self.damaged = False
        self.error: Exception | None = None  # a failure found by another thread, not reported
        self.finished = False  # committed or dropped: nothing more happens to it


class _FileCommitter:
    """What both writers share: how a finished temporary file takes its name, or is
    removed (``fail`` and ``done`` report each file)."""

    def __init__(
        self,
        out: RestoreTarget,
        fail: Callable[[Entry, Exception], None],
        done: Callable[[Entry], None],
        verifier: Verifier | None = None,
    ):
        self.out, self.fail, self.done, self.verifier = out, fail, done, verifier
        self.bytes = 0

    def write_empty(self, entry: Entry) -> None:
        """Restore a file with no chunks (apart from the file being streamed, if any)."""
        if entry.size != 0:
            self.fail(entry, CorruptionError(f"the file list says {entry.size} bytes in no chunks"))
            return
        try:
            fd, temp = self.out.create_temp(entry.path)
        except (OSError, KvbackupError) as exc:
            self.fail(entry, exc)
            return
        self._commit(entry, fd, temp, damaged=False)

    def _commit(
        self,
        entry: Entry,
        fd: int,
        temp: bytes,
        damaged: bool,
        check: Callable[[], None] | None = None,
    ) -> None:
        """Give the temporary file ``temp`` (open as ``fd``, ``-1`` if it is not) its metadata
        and ``entry``'s name, or remove it if it is ``damaged`` or anything fails."""
        try:
            if not damaged:
                if check is not None:
                    check()
                apply_metadata_fd(fd, entry)
            if fd >= 0:
                fd, closing = -1, fd  # released even if close fails: never closed twice
                os.close(closing)
            if not damaged:
                self.out.replace(temp, entry.path)
                temp = b""
                self.done(entry)
        except (OSError, KvbackupError) as exc:
            self.fail(entry, exc)
        finally:
            if fd >= 0:
                os.close(fd)
            if temp:
                with contextlib.suppress(OSError):
                    os.unlink(temp)  # never leave a partial file behind


def check_written(
    fd: int,
    entry: Entry,
    written: int,
    lengths: list[int],
    verifier: Verifier | None,
) -> None:
    """Before a file is committed: all its chunks (of ``lengths``, ``written`` bytes in
    all) were written, holes are kept to its size, and with ``verifier`` each chunk is read
    back and checked against its id. :class:`CorruptionError` otherwise."""
    if len(lengths) != len(entry.chunks) or written != entry.size:
        raise CorruptionError(
            f"restored {written} bytes in {len(lengths)} chunks, the file list "
            f"says {entry.size} bytes in {len(entry.chunks)} chunks"
        )
    if entry.sparse:
        os.ftruncate(fd, entry.size)
    if verifier is not None:
        offset = 0
        for cid, length in zip(entry.chunks, lengths, strict=True):
            data = os.pread(fd, length, offset)
            if len(data) != length or not verifier(data, cid):
                raise CorruptionError(
                    f"read back after writing, the bytes at offset {offset} do not match "
                    f"chunk {cid.hex()}"
                )
            offset += length


class FileWriter(_FileCommitter):
    """Writes fetched chunks into their files, in order, one file open at a time.

    A file reaches its name only if it received every chunk, in order, and has the size the
    file list records (and, with a ``verifier``, what was written reads back to the same
    chunk ids); otherwise its temporary file is removed and the damage reported, and the
    path keeps whatever it held before.
    """

    def __init__(
        self,
        out: RestoreTarget,
        fail: Callable[[Entry, Exception], None],
        done: Callable[[Entry], None],
        verifier: Verifier | None = None,
    ):
        super().__init__(out, fail, done, verifier)
        self.entry: Entry | None = None
        self.fd = -1
        self.temp = b""
        self.damaged = False
        self.next_chunk = 0
        self.written = 0
        self.lengths: list[int] = []

    def write(self, entry: Entry, i: int, data: bytes | KvbackupError) -> None:
        if i == 0:
            self._finish()
            self._start(entry)
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
        try:
            self._write(data)
        except OSError as exc:
            self.fail(entry, exc)
            self.damaged = True
            return
        self.lengths.append(len(data))
        self.written += len(data)
        self.bytes += len(data)

    def _start(self, entry: Entry) -> None:
        self.entry, self.damaged, self.next_chunk, self.written = entry, False, 0, 0
        self.lengths = []
        try:
            self.fd, self.temp = self.out.create_temp(entry.path)
        except (OSError, KvbackupError) as exc:
            self.fd, self.temp = -1, b""
            self.fail(entry, exc)
            self.damaged = True

    def _write(self, data: bytes) -> None:
        if self.entry is not None and self.entry.sparse:
            self._write_sparse(data)
            return
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def _write_sparse(self, data: bytes) -> None:
        """Write ``data``, leaving runs of zero blocks as holes (the file is sized at the end)."""
        view = memoryview(data)
        zero = bytes(_HOLE_BLOCK)
        pos = 0
        while pos < len(view):
            block = view[pos : pos + _HOLE_BLOCK]
            if block == zero[: len(block)]:
                os.lseek(self.fd, len(block), os.SEEK_CUR)
            else:
                rest = block
                while rest:
                    rest = rest[os.write(self.fd, rest) :]
            pos += len(block)

    def _check(self, fd: int, entry: Entry) -> None:
        check_written(fd, entry, self.written, self.lengths, self.verifier)

    def _finish(self) -> None:
        entry, self.entry = self.entry, None
        if entry is None:
            return
        fd, self.fd = self.fd, -1
        temp, self.temp = self.temp, b""
        self._commit(entry, fd, temp, self.damaged, check=lambda: self._check(fd, entry))

    def close(self) -> None:
        self._finish()

    def abort(self) -> None:
        """Drop the file being written, if any (an exception stopped the restore)."""
        self.damaged = True
        self._finish()


class ThreadedFileWriter(_FileCommitter):
    """Writes fetched chunks into their files at their offsets, from any thread.

    :meth:`add` plans a file (its chunks' decoded lengths give their offsets);
    :meth:`write` puts one chunk in place with ``os.pwrite`` (at most ``writers`` threads
    write at once); the write of a file's last chunk commits the file. A file reaches its
    name only if every chunk arrived and the size is the one the file list records (and,
    with a ``verifier``, what was written reads back to the same chunk ids); otherwise its
    temporary file is removed and the damage reported, and the path keeps whatever it held
    before. ``fail`` and ``done`` are called one at a time, from whichever thread finished
    the file; ``fail`` may raise to stop the restore (then call :meth:`abort`). At most about
    ``max_open`` temporary files are open at once (plus one per writing thread).
    """

    def __init__(
        self,
        out: RestoreTarget,
        fail: Callable[[Entry, Exception], None],
        done: Callable[[Entry], None],
        verifier: Verifier | None = None,
        *,
        writers: int = 2,
        max_open: int = DEFAULT_MAX_OPEN,
    ):
        if writers < 1 or max_open < 1:
            raise ValueError("writers and max_open must be at least 1")
        # ``_lock`` guards the callbacks, ``bytes``, the unfinished files and the open ones;
        # it is taken after a file's own lock, never before it (except without blocking).
        self._lock = threading.Lock()
        super().__init__(out, self._locked(fail), self._locked(done), verifier)
        self.max_open = max_open
        #: The most temporary files that were open at once (for tests of the bound).
        self.peak_open = 0
        self._writing = threading.BoundedSemaphore(writers)
        self._unfinished: set[RestoreFile] = set()
        self._open: OrderedDict[RestoreFile, None] = OrderedDict()

    def _locked(self, report: Callable[..., None]) -> Callable[..., None]:
        """``report``, called by one thread at a time."""

        def locked(*args: Any) -> None:
            with self._lock:
                report(*args)

        return locked

    def add(self, entry: Entry, lengths: list[int]) -> RestoreFile:
        """Plan ``entry``, whose chunks decode to ``lengths`` bytes; nothing is opened yet.
        Its folder must have been made sure of (:meth:`RestoreTarget.parent_dir`)."""
        job = RestoreFile(entry, lengths)
        with self._lock:
            self._unfinished.add(job)
        return job

    def write(self, job: RestoreFile, i: int, data: bytes | KvbackupError) -> None:
        """Write chunk ``i`` of ``job`` (or note it cannot be had); commit the file after
        its last chunk."""
        with self._writing:
            error: Exception | None = None
            with job.lock:
                if not (job.damaged or job.finished):
                    if isinstance(data, KvbackupError):
                        error = data
                    else:
                        try:
                            self._write(job, i, data)
                        except (OSError, KvbackupError) as exc:
                            error = exc
                    if error is not None:
                        job.damaged = True
                        self._drop(job)  # its descriptor and space are not held till the end
                job.pending -= 1
                last = job.pending == 0
            try:
                if error is not None:
                    self.fail(job.entry, error)
            finally:
                if last:
                    self._finish(job)

    def _write(self, job: RestoreFile, i: int, data: bytes) -> None:
        if len(data) != job.lengths[i]:
            raise CorruptionError(
                f"chunk {i} decodes to {len(data)} bytes, its location says {job.lengths[i]}"
            )
        fd = self._opened(job)
        if job.entry.sparse:
            _pwrite_sparse(fd, data, job.offsets[i])
        else:
            _pwrite_all(fd, data, job.offsets[i])
        job.written += len(data)
        with self._lock:
            self.bytes += len(data)

    def _opened(self, job: RestoreFile) -> int:
        """``job``'s temporary file, open (created at its first chunk); other files are
        closed if more than ``max_open`` are open. Called with ``job.lock`` held."""
        if job.fd < 0:
            if job.temp:  # closed to bound the open files: open it again by its name
                job.fd = os.open(job.temp, _REOPEN)
            else:
                job.fd, job.temp = self.out.open_temp(job.entry.path)
        with self._lock:
            self._open[job] = None
            self._open.move_to_end(job)
            self.peak_open = max(self.peak_open, len(self._open))
            if len(self._open) > self.max_open:
                self._close_least_recent(job)
        return job.fd

    def _close_least_recent(self, keep: RestoreFile) -> None:
        """Close open temporary files, least recently written first, until ``max_open``
        are open; a file another thread holds is left (``self._lock`` is held)."""
        for victim in list(self._open):
            if len(self._open) <= self.max_open:
                return
            if victim is keep or not victim.lock.acquire(blocking=False):
                continue
            try:
                del self._open[victim]
                fd, victim.fd = victim.fd, -1  # released even if close fails
                if fd >= 0:
                    try:
                        os.close(fd)
                    except OSError as exc:
                        victim.damaged, victim.error = True, exc
            finally:
                victim.lock.release()

    def _check(self, job: RestoreFile, fd: int) -> None:
        check_written(fd, job.entry, job.written, job.lengths, self.verifier)

    def _finish(self, job: RestoreFile) -> None:
        """Commit ``job`` (checked, its metadata applied, renamed into place) or drop it."""
        try:
            with job.lock:
                if job.finished:
                    return
                job.finished = True
                if job.error is not None:
                    self._drop(job)
                    self.fail(job.entry, job.error)
                    return
                if job.damaged:
                    self._drop(job)
                    return
                self._forget_open(job)
                fd, temp, job.fd, job.temp = job.fd, job.temp, -1, b""
                try:
                    if fd < 0:  # closed to bound the open files
                        fd = os.open(temp, _REOPEN)
                except OSError as exc:
                    with contextlib.suppress(OSError):
                        os.unlink(temp)
                    self.fail(job.entry, exc)
                    return
                self._commit(job.entry, fd, temp, False, check=lambda: self._check(job, fd))
        finally:
            with self._lock:
                self._unfinished.discard(job)

    def _forget_open(self, job: RestoreFile) -> None:
        with self._lock:
            self._open.pop(job, None)

    def _drop(self, job: RestoreFile) -> None:
        """Close and remove ``job``'s temporary file, if it has one (``job.lock`` held)."""
        self._forget_open(job)
        fd, temp, job.fd, job.temp = job.fd, job.temp, -1, b""
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        if temp:
            with contextlib.suppress(OSError):
                os.unlink(temp)

    def close(self) -> None:
        """Check that every planned file was finished (all its chunks were written)."""
        if self._unfinished:
            left = len(self._unfinished)
            self.abort()
            raise RuntimeError(f"restore: {left} files were planned and never finished")

    def abort(self) -> None:
        """Drop every file not finished (an exception stopped the restore); a thread still
        writing one of them finds it dropped and leaves it."""
        with self._lock:
            jobs, self._unfinished = list(self._unfinished), set()
        for job in jobs:
            with job.lock:
                job.finished = True
                self._drop(job)


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _pwrite_sparse(fd: int, data: bytes, offset: int) -> None:
    """Write ``data`` at ``offset``, leaving runs of zero blocks as holes (the file is sized
    when it is committed)."""
    view = memoryview(data)
    zero = bytes(_HOLE_BLOCK)
    for pos in range(0, len(view), _HOLE_BLOCK):
        block = view[pos : pos + _HOLE_BLOCK]
        if block != zero[: len(block)]:
            _pwrite_all(fd, block, offset + pos)
