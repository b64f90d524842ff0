"""Any fsspec filesystem as a source: ``s3://bucket/prefix``, ``gcs://...``, ``sftp://...``.

Objects become files with their size and modification time; "folders" of object stores
become directories. An object whose size, modification time and ETag (where the filesystem
gives one) match the parent snapshot's entry is not downloaded again: the ETag's hash is kept
in the entry's ``inode`` field, which exists for change detection only.
"""

from __future__ import annotations

import datetime
import posixpath
from collections.abc import Iterator
from typing import Any, BinaryIO

from blake3 import blake3

from kvbackup.errors import OptionError, PluginError, SourceError, SourceNotFoundError
from kvbackup.sources import DIR, FILE, Entry, ErrorCallback, Source

from . import PREFIX
from .options import filesystem_options


def _mtime_ns(info: dict[str, Any]) -> int:
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=datetime.timezone.utc)
            return int(value.timestamp() * 1_000_000) * 1000
        if isinstance(value, str):
            try:
                parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return _mtime_ns({"mtime": parsed})
        try:
            return int(float(value) * 1_000_000) * 1000
        except (TypeError, ValueError):
            continue
    return 0


def _etag_id(info: dict[str, Any]) -> int:
    """A 63-bit number standing for the object's ETag (0 if it has none)."""
    etag = info.get("ETag") or info.get("etag") or info.get("md5Hash") or ""
    if not etag:
        return 0
    return int.from_bytes(blake3(str(etag).encode()).digest(8), "little") >> 1


class FsspecSource(Source):
    """Every object below ``url`` on an fsspec filesystem."""

    ordered = True
    ranged_reads = True  # fsspec files seek (ranged GETs on object stores)

    def __init__(self, url: str, options: dict[str, str]):
        target = url[len(PREFIX) :] if url.startswith(PREFIX) else url
        from fsspec.core import url_to_fs

        try:
            self.fs, root = url_to_fs(target, **filesystem_options(target, options))
        except ImportError as exc:
            raise PluginError(f"{url}: {exc}") from None  # fsspec names the package
        except TypeError as exc:
            raise OptionError(f"source {url}: option not understood: {exc}") from None
        except ValueError as exc:
            raise SourceError(f"{url}: cannot open filesystem: {exc}") from None
        self.root = root.rstrip("/")
        self.identity = target
        self.url = url
        self.files_opened = 0

    def scan(self, on_error: ErrorCallback) -> Iterator[Entry]:
        try:
            found = self.fs.find(self.root, detail=True, withdirs=True)
        except FileNotFoundError:
            raise SourceNotFoundError(f"{self.url}: no such location") from None
        except OSError as exc:
            raise SourceError(f"{self.url}: cannot list: {exc}") from None
        if not found and not self.fs.exists(self.root):
            raise SourceNotFoundError(f"{self.url}: no such location")
        entries: dict[bytes, Entry] = {}
        for name, info in found.items():
            rel = posixpath.relpath(name.rstrip("/"), self.root) if self.root else name
            if rel in (".", "") or rel.startswith("../"):
                continue
            path = rel.encode("utf-8", "surrogateescape")
            if info.get("type") == "directory":
                entries.setdefault(path, Entry(path=path, kind=DIR, mode=0o755))
                continue
            mtime = _mtime_ns(info)
            entries[path] = Entry(
                path=path,
                kind=FILE,
                mode=0o644,
                size=int(info.get("size") or 0),
                mtime_ns=mtime,
                ctime_ns=mtime,
                inode=_etag_id(info),
                handle=name,
            )
            parent = path.rpartition(b"/")[0]
            while parent and parent not in entries:  # folders only implied by object names
                entries[parent] = Entry(path=parent, kind=DIR, mode=0o755)
                parent = parent.rpartition(b"/")[0]
        for path in sorted(entries, key=lambda p: p.replace(b"/", b"\0")):
            yield entries[path]

    def open(self, entry: Entry) -> BinaryIO:
        self.files_opened += 1
        try:
            return self.fs.open(entry.handle, "rb")
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{entry.handle}: vanished") from exc

    def upload(self, local_path: str, path: str) -> None:
        """Write the local file ``local_path`` to ``path`` below the URL (restore to a URL)."""
        self.fs.put_file(local_path, f"{self.root}/{path}" if self.root else path)
