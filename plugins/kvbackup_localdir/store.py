"""A store in a local directory: key ``a/b`` is the file ``root/a/b``.

Writes go to a temporary file in the target's directory, are flushed, then renamed into
place (``os.replace``) or hard-linked for a conditional write (``os.link`` fails if the key
exists), so readers and concurrent writers, in this process or another, never see a partial
value. Temporary names start with a dot, which no key segment may, so listings skip them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from kvbackup.errors import KeyNotFoundError, StoreError, TransientStoreError
from kvbackup.options import parse_options
from kvbackup.store import Store, check_key

T = TypeVar("T")

TEMP_PREFIX = ".tmp-"
# Only the owner may read a repository: folders 0700, objects 0600, and key slots (which
# hold the password-wrapped master key, the target of offline guessing) read-only, 0400.
DIR_MODE = 0o700
FILE_MODE = 0o600
KEY_SLOT_MODE = 0o400
KEY_SLOT_PREFIX = "keys/"
_ABSENT = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR}
_TRANSIENT = {
    errno.EIO,
    errno.EAGAIN,
    errno.EINTR,
    errno.EBUSY,
    errno.ETIMEDOUT,
    errno.ESTALE,
    errno.ENETDOWN,
    errno.ENETUNREACH,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EHOSTUNREACH,
}
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}


def path_from_url(url: str) -> Path:
    """``/a/b``, ``./a``, ``~/a`` or ``file:///a/b`` -> an absolute path."""
    if url.startswith("file:"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise StoreError(f"{url}: expected file:///absolute/path")
        return Path(unquote(parts.path))
    if not url:
        raise StoreError("empty repository path")
    return Path(url).expanduser().absolute()


class LocalDirStore(Store):
    """Keys as files under ``root``. The root is never created implicitly: pass
    ``create=True`` (option ``create=true``) or call :meth:`ensure_root`."""

    supports_get_range = True
    supports_put_if_absent = True

    def __init__(self, root: str | os.PathLike[str], *, create: bool = False, fsync: bool = True,
                 concurrency: int = 8):  # fmt: skip
        self.root = Path(root)
        self.fsync = fsync
        self.concurrency = concurrency
        self.description = str(self.root)
        if create:
            self.ensure_root()
        elif self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root}: exists and is not a directory")

    @classmethod
    def from_url(cls, url: str, options: dict[str, str]) -> LocalDirStore:
        """Open a plain path or ``file://`` URL with ``--store-option`` values."""
        from . import LocalOptions

        parsed = parse_options(LocalOptions, options, "store 'local'")
        return cls(path_from_url(url), create=parsed.create, fsync=parsed.fsync,
                   concurrency=parsed.concurrency)  # fmt: skip

    def ensure_root(self) -> None:
        """Create the root directory (and its parents) if it does not exist.

        ``init`` calls this (the store contract's optional ``ensure_root``) once every
        check has passed, right before it writes the repository's first object.
        """
        try:
            if not self.root.is_dir():
                self.root.parent.mkdir(parents=True, exist_ok=True)
                self.root.mkdir(mode=DIR_MODE, exist_ok=True)
        except FileExistsError:
            raise StoreError(f"{self.root}: exists and is not a directory") from None
        except OSError as exc:
            raise self._error("create", "", exc) from exc

    # -- helpers ---------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _error(self, op: str, key: str, exc: OSError) -> StoreError:
        where = f"{op} {key}" if key else op
        message = f"{self.root}: {where}: {exc.strerror or exc}"
        if exc.errno in _TRANSIENT:
            return TransientStoreError(message)
        return StoreError(message)

    def _call(self, op: str, key: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except OSError as exc:
            if exc.errno in _ABSENT and op == "get":
                raise KeyNotFoundError(f"{key}: not found in {self.root}") from None
            raise self._error(op, key, exc) from exc

    # -- reads -----------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        path = self._path(key)
        return self._call("get", key, path.read_bytes)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        path = self._path(key)

        def read() -> bytes:
            with open(path, "rb") as f:
                if start < 0:
                    size = os.fstat(f.fileno()).st_size
                    f.seek(max(0, size + start))
                    return f.read()
                f.seek(start)
                return f.read(max(0, length))

        return self._call("get", key, read)

    def exists(self, key: str) -> bool:
        path = self._path(key)
        try:
            return self._call("get", key, path.is_file)
        except KeyNotFoundError:
            return False

    def list(self, prefix: str = "") -> Iterator[str]:
        folder, _, start = prefix.rpartition("/")
        segments = folder.split("/") if folder else []
        if any(not s or s.startswith(".") or s == ".." for s in segments):
            return  # no valid key lies there
        directory = self.root.joinpath(*segments)
        base = folder + "/" if folder else ""
        yield from self._walk(directory, base, start)

    def _walk(self, directory: Path, base: str, start: str = "") -> Iterator[str]:
        pending = [(directory, base, start)]  # no recursion: a crafted deep folder is harmless
        while pending:
            directory, base, start = pending.pop()
            try:
                with os.scandir(directory) as it:
                    entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
            except OSError as exc:
                if exc.errno in _ABSENT:
                    continue
                raise self._error("list", base or "/", exc) from exc
            for name, is_dir in entries:
                if name.startswith(".") or not name.startswith(start):
                    continue
                if is_dir:
                    pending.append((directory / name, f"{base}{name}/", ""))
                else:
                    yield base + name

    def list_sizes(self, prefix: str = "") -> Iterator[tuple[str, int | None]]:
        for key in self.list(prefix):
            try:
                yield key, self._path(key).stat().st_size
            except FileNotFoundError:
                continue  # deleted since the listing
            except OSError as exc:
                raise self._error("list", key, exc) from exc

    def list_temporary(self) -> Iterator[tuple[str, int, float]]:
        """Temporary files of writes that never finished (``.tmp-*``, at any depth)."""
        found = []
        try:
            for directory, subdirs, files in os.walk(self.root):
                subdirs[:] = [d for d in subdirs if not d.startswith(".")]
                for name in files:
                    if name.startswith(TEMP_PREFIX):
                        path = os.path.join(directory, name)
                        with contextlib.suppress(FileNotFoundError):
                            st = os.stat(path)
                            found.append(
                                (os.path.relpath(path, self.root), st.st_size, st.st_mtime)
                            )
        except OSError as exc:
            raise self._error("list", "temporary files", exc) from exc
        return iter(sorted(found))

    def delete_temporary(self, name: str) -> None:
        parts = name.split("/")
        if not parts[-1].startswith(TEMP_PREFIX) or any(p in ("", ".", "..") for p in parts):
            raise StoreError(f"{self.root}: {name!r} is not a temporary file of this store")
        try:
            self.root.joinpath(*parts).unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._error("delete", name, exc) from exc

    # -- writes ----------------------------------------------------------------------------

    def _mode(self, path: Path) -> int:
        return KEY_SLOT_MODE if path.parent == self.root / KEY_SLOT_PREFIX[:-1] else FILE_MODE

    def _write_temp(self, path: Path, value: bytes) -> Path:
        """Write ``value`` to a new temporary file next to ``path``; return its path."""
        temp = path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        mode = self._mode(path)
        try:
            fd = os.open(temp, flags, mode)
        except FileNotFoundError:
            self._make_parents(path)
            fd = os.open(temp, flags, mode)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(value)
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
        except BaseException:
            _unlink(temp)
            raise
        return temp

    def _make_parents(self, path: Path) -> None:
        # The root itself is never created here: a vanished root (an unmounted disk) must
        # be an error, not an empty directory on the wrong filesystem.
        if not self.root.is_dir():
            raise StoreError(f"{self.root}: directory does not exist")
        folder = self.root
        for part in path.parent.relative_to(self.root).parts:
            folder = folder / part
            with contextlib.suppress(FileExistsError):
                folder.mkdir(mode=DIR_MODE)

    def _sync_dir(self, directory: Path) -> None:
        if not self.fsync or os.name != "posix":
            return
        try:
            fd = os.open(directory, os.O_RDONLY)
        except OSError:
            return
        try:
            # some filesystems cannot sync a directory; the file itself is synced
            with contextlib.suppress(OSError):
                os.fsync(fd)
        finally:
            os.close(fd)

    def put(self, key: str, value: bytes) -> None:
        path = self._path(key)

        def put() -> None:
            temp = self._write_temp(path, value)
            try:
                os.replace(temp, path)
            except BaseException:
                _unlink(temp)
                raise
            self._sync_dir(path.parent)

        self._call("put", key, put)

    def put_if_absent(self, key: str, value: bytes) -> bool:
        path = self._path(key)

        def put() -> bool:
            if path.exists():
                return False
            temp = self._write_temp(path, value)
            try:
                os.link(temp, path)
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in _NO_LINKS:
                    raise
                return self._create_exclusive(path, value)  # no hard links here
            finally:
                _unlink(temp)
            self._sync_dir(path.parent)
            return True

        return self._call("put", key, put)

    def _create_exclusive(self, path: Path, value: bytes) -> bool:
        """Fallback without hard links: atomic as to existence, not as to content."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self._mode(path))
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(value)
            if self.fsync:
                os.fsync(f.fileno())
        return True

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except OSError as exc:
            if exc.errno in _ABSENT:
                return
            raise self._error("delete", key, exc) from exc


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
