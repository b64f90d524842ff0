"""A directory tree, walked depth first in byte order of names."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from kvbackup.errors import OptionError, SourceError
from kvbackup.options import parse_bool
from kvbackup.sources import DIR, FILE, SYMLINK, Entry, ErrorCallback, Source


class DirectorySource(Source):
    """Every regular file, directory and symlink below ``root`` (the root itself excluded).

    Other kinds (sockets, FIFOs, devices) are left out. Names are handled as bytes.
    """

    ordered = True

    def __init__(
        self, root: str | bytes | os.PathLike[str], one_file_system: bool | str = False
    ) -> None:
        root_b = os.fsencode(os.path.abspath(os.fsdecode(root)))
        if not os.path.isdir(root_b):
            raise SourceError(f"{os.fsdecode(root_b)}: not a directory")
        self.root = root_b
        self.identity = os.fsdecode(root_b)
        if isinstance(one_file_system, str):
            try:
                one_file_system = parse_bool(one_file_system or "false")
            except ValueError as exc:
                raise OptionError(f"source option one_file_system: {exc}") from None
        self._one_fs = one_file_system
        self._root_dev = os.stat(root_b).st_dev

    def scan(self, on_error: ErrorCallback) -> Iterator[Entry]:
        # A stack of folder listings, not recursion: a tree thousands of levels deep is
        # walked like any other.
        stack = [self._children(self.root, b"", on_error)]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
                continue
            entry, folder = item
            yield entry
            if folder is not None:
                stack.append(self._children(folder, entry.path, on_error))

    def _children(
        self, abspath: bytes, rel: bytes, on_error: ErrorCallback
    ) -> Iterator[tuple[Entry, bytes | None]]:
        """The entries of one folder in name order, each with its absolute path if it is a
        folder to descend into."""
        try:
            with os.scandir(abspath) as it:
                children = sorted(it, key=lambda d: d.name)
        except OSError as exc:
            on_error(rel or b".", exc)
            return
        for child in children:
            path = rel + b"/" + child.name if rel else child.name
            try:
                st = child.stat(follow_symlinks=False)
            except OSError as exc:
                on_error(path, exc)
                continue
            mode = st.st_mode
            entry = Entry(
                path=path,
                kind=FILE,
                mode=stat.S_IMODE(mode),
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                ctime_ns=st.st_ctime_ns,
                inode=st.st_ino,
                uid=st.st_uid,
                gid=st.st_gid,
            )
            if stat.S_ISREG(mode):
                yield entry, None
            elif stat.S_ISDIR(mode):
                entry.kind, entry.size = DIR, 0
                descend = not (self._one_fs and st.st_dev != self._root_dev)
                yield entry, child.path if descend else None
            elif stat.S_ISLNK(mode):
                try:
                    entry.target = os.readlink(child.path)
                except OSError as exc:
                    on_error(path, exc)
                    continue
                entry.kind, entry.size = SYMLINK, 0
                yield entry, None

    def open(self, entry: Entry) -> BinaryIO:
        fd = os.open(os.path.join(self.root, entry.path), os.O_RDONLY | os.O_NOFOLLOW)
        return os.fdopen(fd, "rb", buffering=0)
