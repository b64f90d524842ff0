"""A read-only view of a repository as a folder tree (what ``kvbackup mount`` serves).

::

    snapshots/<id>/...          every complete snapshot, its files as stored
    latest -> snapshots/<id>    the newest complete snapshot
    hosts/<host>/<source>/<id>  symlinks to snapshots/<id>, and ``latest`` per source

``<host>`` and ``<source>`` are the snapshot's host and source made one safe folder name
each (:func:`folder_name`: ``/`` written ``%2F``, ``%`` ``%25``, NUL ``%00``, ``.`` and
``..`` ``%2E``, a name that is not text as its escapes), whatever a repository holds.
A snapshot's file list is read the first time something under it is looked at. A file
read fetches only the chunks the requested byte range touches, and keeps recently read
chunks in a small cache bounded in bytes.

This module knows nothing of FUSE: :mod:`kvbackup.ops.mount.fuse` adapts it.
"""

from __future__ import annotations

import bisect
import errno
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ...core.repo import RepoCore
from ...errors import KvbackupError
from ...format.index import GroupIndex
from ...format.snapshots import Snapshot
from ...sources import DIR, FILE, SYMLINK

DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
MAX_LOADED_SNAPSHOTS = 16


class FsError(OSError):
    """An error with an ``errno`` for the file system to return."""


@dataclass(eq=False, slots=True)
class Node:
    """A file, folder or symbolic link of the tree."""

    kind: str
    mode: int = 0o555
    size: int = 0
    mtime_ns: int = 0
    uid: int = -1
    gid: int = -1
    target: bytes | None = None
    chunks: list[bytes] = field(default_factory=list)
    children: dict[bytes, Node] | None = None
    #: For a snapshot folder not yet loaded: the snapshot to load it from.
    snapshot: Snapshot | None = None
    group: str = ""
    offsets: list[int] | None = None  # start of each chunk in the file, once known

    def attributes(self) -> dict[str, int]:
        """``stat`` fields, as ``os.lstat`` would give them for the stored entry."""
        type_bits = {FILE: stat.S_IFREG, DIR: stat.S_IFDIR, SYMLINK: stat.S_IFLNK}[self.kind]
        size = len(self.target or b"") if self.kind == SYMLINK else self.size
        attrs = {
            "st_mode": type_bits | self.mode,
            "st_size": size,
            "st_nlink": 2 if self.kind == DIR else 1,
            "st_mtime": self.mtime_ns,
            "st_atime": self.mtime_ns,
            "st_ctime": self.mtime_ns,
            "st_blocks": (size + 511) // 512,
        }
        if self.uid >= 0:
            attrs["st_uid"] = self.uid
            attrs["st_gid"] = self.gid
        return attrs


def _dir(mtime_ns: int = 0, mode: int = 0o555) -> Node:
    return Node(DIR, mode=mode, mtime_ns=mtime_ns, children={})


def _link(target: str, mtime_ns: int = 0) -> Node:
    return Node(SYMLINK, mode=0o777, target=target.encode(), mtime_ns=mtime_ns)


def folder_name(text: str) -> bytes:
    """``text`` (a host or source from a snapshot record) as one folder name: never empty
    of meaning, never ``.`` or ``..``, never holding ``/`` or NUL, always encodable."""
    name = text.replace("%", "%25").replace("/", "%2F").replace("\0", "%00")
    if name in (".", ".."):
        name = name.replace(".", "%2E")
    # A lone surrogate (JSON allows "\udcff") cannot be encoded: written as its escape.
    return name.encode("utf-8", "backslashreplace")


def _time_ns(snapshot: Snapshot) -> int:
    value: Any = snapshot.time
    if hasattr(value, "timestamp"):
        return int(value.timestamp() * 1e9)
    import calendar

    return calendar.timegm(time.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ")) * 1_000_000_000


class ChunkCache:
    """Recently read chunks, bounded by their total size."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._data: OrderedDict[bytes, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, cid: bytes) -> bytes | None:
        with self._lock:
            data = self._data.get(cid)
            if data is not None:
                self._data.move_to_end(cid)
            return data

    def put(self, cid: bytes, data: bytes) -> None:
        with self._lock:
            if cid in self._data or len(data) > self.max_bytes:
                return
            self._data[cid] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                _, old = self._data.popitem(last=False)
                self._bytes -= len(old)

    @property
    def size(self) -> int:
        return self._bytes


class SnapshotTree:
    """The folder tree of a repository's snapshots; thread-safe, read-only."""

    def __init__(self, repo: RepoCore, cache_bytes: int = DEFAULT_CACHE_BYTES):
        self.repo = repo
        self.cache = ChunkCache(cache_bytes)
        self._lock = threading.RLock()
        self._indexes: dict[str, GroupIndex] = {}
        self._loaded: OrderedDict[str, Node] = OrderedDict()
        self.root = self._build_root(repo.snapshots())

    def _build_root(self, snapshots: list[Snapshot]) -> Node:
        complete = [s for s in snapshots if s.complete]
        root = _dir(_time_ns(complete[-1]) if complete else 0)
        assert root.children is not None
        by_id = _dir(root.mtime_ns)
        hosts = _dir(root.mtime_ns)
        root.children[b"snapshots"] = by_id
        root.children[b"hosts"] = hosts
        for snap in complete:
            when = _time_ns(snap)
            assert by_id.children is not None and hosts.children is not None
            by_id.children[snap.id.encode()] = Node(
                DIR, mode=0o555, mtime_ns=when, snapshot=snap, group=snap.group
            )
            host = hosts.children.setdefault(folder_name(snap.host) or b"(unknown)", _dir(when))
            assert host.children is not None
            source = host.children.setdefault(folder_name(snap.source) or b"%2F", _dir(when))
            assert source.children is not None
            source.children[snap.id.encode()] = _link(f"../../../snapshots/{snap.id}", when)
            source.children[b"latest"] = _link(snap.id, when)
            host.mtime_ns = source.mtime_ns = when
        if complete:
            root.children[b"latest"] = _link(f"snapshots/{complete[-1].id}", root.mtime_ns)
        return root

    # ------------------------------------------------------------------ lookups

    def lookup(self, path: bytes) -> Node:
        """The node at ``path`` (``/``-separated, from the root); :class:`FsError` if none."""
        node = self.root
        for part in path.strip(b"/").split(b"/") if path.strip(b"/") else ():
            if node.kind != DIR:
                raise FsError(errno.ENOTDIR, "not a folder")
            if node.snapshot is not None:
                node = self._load(node)
            assert node.children is not None
            child = node.children.get(part)
            if child is None:
                raise FsError(errno.ENOENT, "no such file or folder")
            node = child
        if node.kind == DIR and node.snapshot is not None:
            node = self._load(node)
        return node

    def listdir(self, path: bytes) -> list[bytes]:
        node = self.lookup(path)
        if node.kind != DIR or node.children is None:
            raise FsError(errno.ENOTDIR, "not a folder")
        return list(node.children)

    def _index(self, group: str) -> GroupIndex:
        with self._lock:
            if group not in self._indexes:
                self._indexes[group], _ = self.repo.load_index(group)
            return self._indexes[group]

    def _load(self, placeholder: Node) -> Node:
        """The tree of a snapshot folder, reading its file list the first time."""
        snap = placeholder.snapshot
        assert snap is not None
        with self._lock:
            loaded = self._loaded.get(snap.id)
            if loaded is not None:
                self._loaded.move_to_end(snap.id)
                return loaded
            try:
                loaded = self._read_snapshot(snap)
            except KvbackupError as exc:
                raise FsError(errno.EIO, str(exc)) from exc
            self._loaded[snap.id] = loaded
            while len(self._loaded) > MAX_LOADED_SNAPSHOTS:
                self._loaded.popitem(last=False)
            return loaded

    def _read_snapshot(self, snap: Snapshot) -> Node:
        top = _dir(_time_ns(snap), 0o555)
        index = self._index(snap.group)
        for entry in self.repo.iter_entries(snap, index):
            if entry.kind not in (FILE, DIR, SYMLINK):
                continue  # a kind this view cannot show (it would need its own file type)
            *parents, name = entry.path.split(b"/")
            folder = top
            for part in parents:
                assert folder.children is not None
                folder = folder.children.setdefault(part, _dir(top.mtime_ns))
            assert folder.children is not None
            existing = folder.children.get(name)
            node = Node(
                entry.kind,
                mode=entry.mode & 0o7777,
                size=entry.size,
                mtime_ns=entry.mtime_ns,
                uid=entry.uid,
                gid=entry.gid,
                target=entry.target,
                chunks=entry.chunks,
                group=snap.group,
            )
            if entry.kind == DIR:
                node.children = existing.children if existing and existing.children else {}
            folder.children[name] = node
        return top

    # ------------------------------------------------------------------ reading

    def read(self, node: Node, offset: int, size: int) -> bytes:
        """``size`` bytes of file ``node`` from ``offset``, fetching only the chunks they
        lie in (and not those in the cache)."""
        if node.kind != FILE:
            raise FsError(errno.EISDIR, "not a file")
        end = min(node.size, offset + size)
        if offset >= end or not node.chunks:
            return b""
        index = self._index(node.group)
        offsets = self._offsets(node, index)
        first = bisect.bisect_right(offsets, offset) - 1
        last = bisect.bisect_left(offsets, end) - 1
        wanted = list(range(first, last + 1))
        got: dict[int, bytes] = {}
        missing = []
        for n in wanted:
            data = self.cache.get(node.chunks[n])
            if data is None:
                missing.append(n)
            else:
                got[n] = data
        if missing:
            items = ((n, node.chunks[n]) for n in missing)
            for n, fetched in self.repo.fetch_chunks(node.group, index, items):
                if isinstance(fetched, KvbackupError):
                    raise FsError(errno.EIO, str(fetched))
                self.cache.put(node.chunks[n], fetched)
                got[n] = fetched
        joined = b"".join(got[n] for n in wanted)
        start = offset - offsets[first]
        return joined[start : start + (end - offset)]

    def _offsets(self, node: Node, index: GroupIndex) -> list[int]:
        if node.offsets is None:
            offsets, pos = [], 0
            for cid in node.chunks:
                loc = index.get(cid)
                if loc is None:
                    raise FsError(errno.EIO, f"chunk {cid.hex()} is not in the index")
                offsets.append(pos)
                pos += loc.raw_length
            node.offsets = offsets
        return node.offsets

    def walk(self, path: bytes = b"/") -> Iterator[bytes]:
        """Every path under ``path`` (for tests and tools), depth first."""
        for name in self.listdir(path):
            child = path.rstrip(b"/") + b"/" + name
            yield child
            if self.lookup(child).kind == DIR:
                yield from self.walk(child)
