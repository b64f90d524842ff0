"""A directory tree, walked depth first in byte order of names, without recursion."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from kvbackup.display import display_name
from kvbackup.errors import OptionError, SourceError
from kvbackup.excludes import ExcludeMatcher
from kvbackup.metadata import group_name, is_sparse, read_xattrs, user_name
from kvbackup.options import parse_bool
from kvbackup.sources import (
    BLOCKDEV,
    CHARDEV,
    DIR,
    FIFO,
    FILE,
    SYMLINK,
    Entry,
    ErrorCallback,
    Source,
)

_SPECIAL = {stat.S_IFIFO: FIFO, stat.S_IFCHR: CHARDEV, stat.S_IFBLK: BLOCKDEV}


def make_entry(path: bytes, st: os.stat_result, abspath: bytes) -> Entry:
    """The entry of a file-system object from its ``lstat`` (kind left to the caller)."""
    entry = Entry(
        path=path,
        kind=FILE,
        mode=stat.S_IMODE(st.st_mode),
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        inode=st.st_ino,
        uid=st.st_uid,
        gid=st.st_gid,
        user=user_name(st.st_uid),
        group=group_name(st.st_gid),
    )
    if not stat.S_ISLNK(st.st_mode):
        entry.xattrs = read_xattrs(abspath)
    return entry


class DirectorySource(Source):
    """Every regular file, directory, symlink, FIFO and device node below ``root`` (the
    root itself excluded), with owners, xattrs, hard links and holes. Sockets are left out
    with a warning. Names are handled as bytes. Exclude rules, when the engine gives them,
    are applied while walking: an excluded folder is never read.
    """

    ordered = True
    # Each open is a file descriptor of its own, so reads on the writer's threads would be
    # safe; but on two cores they cost more (interpreter-lock hand-offs) than they overlap:
    # docs/performance.md, "Round 4: the initial backup on two cores".
    threaded_reads = False
    applies_excludes = True
    ranged_reads = True  # an open file seeks

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
        self.excludes: ExcludeMatcher | None = None
        self.warnings: list[str] = []
        self._links: dict[tuple[int, int], bytes] = {}

    def scan(self, on_error: ErrorCallback) -> Iterator[Entry]:
        yield from self.walk(self.root, b"", on_error)

    def _children(
        self, abspath: bytes, rel: bytes, on_error: ErrorCallback
    ) -> Iterator[os.DirEntry[bytes]]:
        try:
            with os.scandir(abspath) as it:
                children = sorted(it, key=lambda d: d.name)
        except OSError as exc:
            on_error(rel or b".", exc)
            return iter(())
        return iter(children)

    def walk(self, abspath: bytes, prefix: bytes, on_error: ErrorCallback) -> Iterator[Entry]:
        """The entries below ``abspath``, their paths relative to it (joined to ``prefix``)."""
        one_fs = self._one_fs or bool(self.excludes and self.excludes.rules.one_file_system)
        root_dev = os.stat(abspath).st_dev
        skip = len(prefix) + 1 if prefix else 0  # patterns are anchored at abspath
        stack = [(prefix, self._children(abspath, prefix, on_error))]
        while stack:
            rel, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                continue
            path = rel + b"/" + child.name if rel else child.name
            try:
                st = child.stat(follow_symlinks=False)
            except OSError as exc:
                on_error(path, exc)
                continue
            entry = self._entry(path, path[skip:], child.path, st, on_error)
            if entry is None:
                continue
            yield entry
            if entry.kind == DIR and not (one_fs and st.st_dev != root_dev):
                stack.append((path, self._children(child.path, path, on_error)))

    def _entry(
        self,
        path: bytes,
        anchored: bytes,
        abspath: bytes,
        st: os.stat_result,
        on_error: ErrorCallback,
    ) -> Entry | None:
        """The entry for one child, or ``None`` if it is excluded or cannot be recorded;
        ``anchored`` is its path relative to the folder the patterns are anchored at."""
        mode = st.st_mode
        excludes = self.excludes
        is_dir = stat.S_ISDIR(mode)
        if excludes is not None:
            if excludes.excludes_path(anchored, is_dir):
                excludes.excluded += 1
                return None
            if is_dir and excludes.excludes_dir_content(abspath):
                excludes.excluded += 1
                return None
            if stat.S_ISREG(mode) and excludes.excludes_size(st.st_size):
                excludes.excluded += 1
                return None
        if stat.S_ISSOCK(mode):
            self.warnings.append(f"{display_name(path)}: a socket, not backed up")
            return None
        entry = make_entry(path, st, abspath)
        if stat.S_ISREG(mode):
            if st.st_nlink > 1:
                entry.nlink = st.st_nlink
                first = self._links.setdefault((st.st_dev, st.st_ino), path)
                if first != path:
                    entry.hardlink = first
            entry.sparse = is_sparse(abspath, st)
        elif is_dir:
            entry.kind, entry.size = DIR, 0
        elif stat.S_ISLNK(mode):
            try:
                entry.target = os.readlink(abspath)
            except OSError as exc:
                on_error(path, exc)
                return None
            entry.kind, entry.size = SYMLINK, 0
        elif stat.S_IFMT(mode) in _SPECIAL:
            entry.kind, entry.size = _SPECIAL[stat.S_IFMT(mode)], 0
            entry.rdev = st.st_rdev if entry.kind != FIFO else 0
        else:
            self.warnings.append(f"{display_name(path)}: an unknown kind of file, not backed up")
            return None
        return entry

    def open(self, entry: Entry) -> BinaryIO:
        fd = os.open(os.path.join(self.root, entry.path), os.O_RDONLY | os.O_NOFOLLOW)
        return os.fdopen(fd, "rb", buffering=0)
