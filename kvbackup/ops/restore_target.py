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
import os
import secrets
import stat
import tempfile
from collections.abc import Callable

from ..display import display_name
from ..errors import CorruptionError, KvbackupError, TargetNotWritableError, UnsafePathError
from ..metadata import apply_metadata, apply_metadata_fd
from ..sources import Entry, check_relative_path

TEMP_PREFIX = b".kvbackup-"
TEMP_SUFFIX = b".tmp"
_CREATE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
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


class FileWriter:
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
        self.out, self.fail, self.done, self.verifier = out, fail, done, verifier
        self.entry: Entry | None = None
        self.fd = -1
        self.temp = b""
        self.damaged = False
        self.next_chunk = 0
        self.written = 0
        self.lengths: list[int] = []
        self.bytes = 0

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
        if self.next_chunk != len(entry.chunks) or self.written != entry.size:
            raise CorruptionError(
                f"restored {self.written} bytes in {self.next_chunk} chunks, the file list "
                f"says {entry.size} bytes in {len(entry.chunks)} chunks"
            )
        if entry.sparse:
            os.ftruncate(fd, entry.size)
        if self.verifier is not None:
            offset = 0
            for cid, length in zip(entry.chunks, self.lengths, strict=True):
                data = os.pread(fd, length, offset)
                if len(data) != length or not self.verifier(data, cid):
                    raise CorruptionError(
                        f"read back after writing, the bytes at offset {offset} do not match "
                        f"chunk {cid.hex()}"
                    )
                offset += length

    def _finish(self) -> None:
        entry, self.entry = self.entry, None
        if entry is None:
            return
        fd, self.fd = self.fd, -1
        temp, self.temp = self.temp, b""
        self._commit(entry, fd, temp, self.damaged, check=lambda: self._check(fd, entry))

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

    def close(self) -> None:
        self._finish()

    def abort(self) -> None:
        """Drop the file being written, if any (an exception stopped the restore)."""
        self.damaged = True
        self._finish()
