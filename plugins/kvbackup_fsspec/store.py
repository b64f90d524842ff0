"""A store on an fsspec filesystem, through its file API (never ``FSMap``).

``FSMap`` turns every error into ``KeyError`` (fsspec issue #255), which a backup tool would
read as "absent". Here only ``FileNotFoundError`` means absent; other errors are transient
unless they clearly are not (permissions, bad arguments).
"""

from __future__ import annotations

import contextlib
import errno
import posixpath
import secrets
from collections.abc import Callable, Iterator
from typing import TypeVar

import fsspec
from fsspec.core import url_to_fs

from kvbackup.errors import (
    KeyNotFoundError,
    OptionError,
    PluginError,
    StoreError,
    TransientStoreError,
)
from kvbackup.options import parse_bool
from kvbackup.registry import install_hint, missing_module
from kvbackup.store import Store, check_key

from . import PREFIX
from .options import filesystem_options

T = TypeVar("T")
TEMP_PREFIX = ".tmp-"
# Errors that retrying cannot fix (bad options, unsupported operations); anything else that
# is not an authoritative "absent" is transient: retried, then reported, never "absent".
_PERMANENT = (TypeError, ValueError, NotImplementedError, AttributeError)
_PERMANENT_ERRNO = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EINVAL}


def missing_backend(exc: ImportError) -> str:
    """fsspec's "Install s3fs to access S3", with the pip command that installs it: the
    ``kvbackup[fsspec]`` extra where it has the package."""
    module = missing_module(exc)
    text = " ".join(str(exc).split()) or f"No module named {module!r}"
    if not module:
        return text
    return f"{text} ({install_hint(module, 'kvbackup')})"


class FsspecStore(Store):
    """Keys as files under ``root`` on the fsspec filesystem ``fs``."""

    supports_get_range = True
    supports_put_if_absent = False  # check-then-put: fsspec has no conditional write

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, description: str,
                 concurrency: int = 8):  # fmt: skip
        self.fs = fs
        self.root = root.rstrip("/")
        self.description = description
        self.concurrency = concurrency
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        # On a local filesystem a write is not atomic: write aside, then rename.
        self._rename_into_place = protocol in ("file", "local")
        # Filesystems with real directories need the root made; object stores do not, and
        # must not (s3fs would create a missing bucket).
        self._has_directories = protocol in (
            "file",
            "local",
            "memory",
            "sftp",
            "ssh",
            "ftp",
            "smb",
            "webdav",
            "hdfs",
        )

    def ensure_root(self) -> None:
        """Make the root folder where the filesystem has folders (``init`` calls this)."""
        if self._has_directories:
            self._call("create", "", lambda: self.fs.makedirs(self.root, exist_ok=True))

    @classmethod
    def from_url(cls, url: str, options: dict[str, str]) -> FsspecStore:
        """Open ``[fsspec::]PROTOCOL://path`` with storage options from ``options``."""
        target = url[len(PREFIX) :] if url.startswith(PREFIX) else url
        concurrency = options.get("concurrency", "8")
        if not concurrency.isdigit() or int(concurrency) < 1:
            raise OptionError("store 'fsspec': option concurrency: not a positive integer")
        try:
            create = parse_bool(options.get("create", "false"))
        except ValueError as exc:
            raise OptionError(f"store 'fsspec': option create: {exc}") from None
        try:
            fs, root = url_to_fs(target, **filesystem_options(target, options))
        except ImportError as exc:
            raise PluginError(f"{url}: {missing_backend(exc)}") from exc
        except (ValueError, TypeError) as exc:
            raise StoreError(f"{url}: cannot open filesystem: {exc}") from exc
        store = cls(fs, root, target, int(concurrency))
        if create:
            store._call("create", "", lambda: fs.makedirs(store.root, exist_ok=True))
        return store

    # -- helpers ---------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    def _call(self, op: str, key: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            if op == "get":
                raise KeyNotFoundError(f"{key}: not found in {self.description}") from None
            raise StoreError(f"{self.description}: {op} {key}: {exc}") from exc
        except StoreError:
            raise
        except PermissionError as exc:
            raise StoreError(f"{self.description}: {op} {key}: permission denied") from exc
        except Exception as exc:
            message = f"{self.description}: {op} {key}: {type(exc).__name__}: {exc}"
            if isinstance(exc, _PERMANENT) or (
                isinstance(exc, OSError) and exc.errno in _PERMANENT_ERRNO
            ):
                raise StoreError(message) from exc
            raise TransientStoreError(message) from exc

    # -- operations ------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        path = self._path(key)
        return self._call("get", key, lambda: bytes(self.fs.cat_file(path)))

    def get_range(self, key: str, start: int, length: int) -> bytes:
        path = self._path(key)
        end = None if start < 0 else start + max(0, length)

        def read() -> bytes:
            try:
                return bytes(self.fs.cat_file(path, start=start, end=end))
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
                raise
            except OSError:
                # Some backends (s3fs) refuse a range outside the value ("not satisfiable").
                size = self.fs.size(path)
                if start >= size:
                    return b""
                if start < 0 and -start >= size:
                    return bytes(self.fs.cat_file(path))
                raise

        return self._call("get", key, read)

    def put(self, key: str, value: bytes) -> None:
        path = self._path(key)
        self._call("put", key, lambda: self._put(path, value))

    def _put(self, path: str, value: bytes) -> None:
        parent = posixpath.dirname(path)
        target = path
        if self._rename_into_place:
            target = f"{parent}/{TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            self.fs.pipe_file(target, value)
        except FileNotFoundError:
            # A filesystem with real directories: make them, but only inside an existing
            # root (on s3fs, makedirs would even create a missing bucket).
            if not self.fs.isdir(self.root):
                raise StoreError(f"{self.description}: does not exist") from None
            self.fs.makedirs(parent, exist_ok=True)
            self.fs.pipe_file(target, value)
        if target != path:
            try:
                self.fs.mv(target, path)
            except BaseException:
                self.fs.rm_file(target)
                raise

    def delete(self, key: str) -> None:
        path = self._path(key)

        def delete() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(path)

        self._call("delete", key, delete)

    def list_sizes(self, prefix: str = "") -> Iterator[tuple[str, int | None]]:
        for key, size, _ in self._find(prefix):
            if not any(s.startswith(".") for s in key.split("/")):
                yield key, size

    def list_temporary(self) -> Iterator[tuple[str, int, float]]:
        """Temporary files of writes that never finished (``.tmp-*``)."""
        for key, size, mtime in self._find(""):
            if key.rsplit("/", 1)[-1].startswith(TEMP_PREFIX):
                yield key, size or 0, mtime

    def delete_temporary(self, name: str) -> None:
        if not name.rsplit("/", 1)[-1].startswith(TEMP_PREFIX) or ".." in name.split("/"):
            raise StoreError(f"{self.description}: {name!r} is not a temporary file of this store")
        path = f"{self.root}/{name}"

        def delete() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(path)

        self._call("delete", name, delete)

    def _find(self, prefix: str) -> Iterator[tuple[str, int | None, float]]:
        folder = prefix.rpartition("/")[0]
        base = f"{self.root}/{folder}" if folder else self.root
        cut = len(self.root) + 1

        def find() -> dict[str, dict[str, object]]:
            self.fs.invalidate_cache(base)
            try:
                return dict(self.fs.find(base, withdirs=False, detail=True))
            except FileNotFoundError:
                return {}

        for path, info in self._call("list", prefix or "/", find).items():
            key = path[cut:]
            if path.startswith(self.root + "/") and key.startswith(prefix):
                size = info.get("size")
                mtime = info.get("mtime") or info.get("LastModified") or 0.0
                if hasattr(mtime, "timestamp"):
                    mtime = mtime.timestamp()
                yield key, int(size) if isinstance(size, int) else None, float(mtime)  # type: ignore[arg-type]

    def list(self, prefix: str = "") -> Iterator[str]:
        folder = prefix.rpartition("/")[0]
        base = f"{self.root}/{folder}" if folder else self.root
        cut = len(self.root) + 1

        def find() -> list[str]:
            self.fs.invalidate_cache(base)  # another client may have written since
            try:
                return list(self.fs.find(base, withdirs=False))
            except FileNotFoundError:
                return []

        for path in self._call("list", prefix or "/", find):
            key = path[cut:]
            hidden = any(s.startswith(".") for s in key.split("/"))  # temporary files
            if path.startswith(self.root + "/") and key.startswith(prefix) and not hidden:
                yield key
