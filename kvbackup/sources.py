"""The source contract: what a source plugin yields and how the engine reads it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from .display import display_name

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
FIFO = "fifo"
CHARDEV = "chardev"
BLOCKDEV = "blockdev"
KINDS = (FILE, DIR, SYMLINK, FIFO, CHARDEV, BLOCKDEV)
#: Kinds with no content: recreated from their metadata (``rdev`` for devices).
SPECIAL_KINDS = (FIFO, CHARDEV, BLOCKDEV)


@dataclass(slots=True)
class Entry:
    """One entry of a source: a file, a directory, a symbolic link or a special file.

    ``path`` is relative to the source root, its components joined by ``b"/"``; the bytes
    are kept exactly, so names that are not valid UTF-8 round-trip. ``chunks`` is filled in
    by the engine. ``handle`` is private to the source that made the entry.
    """

    path: bytes
    kind: str
    mode: int = 0o644
    size: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    inode: int = 0
    uid: int = -1
    gid: int = -1
    target: bytes | None = None
    chunks: list[bytes] = field(default_factory=list)
    #: Owner and group names, when known (restored by name where the name exists).
    user: str = ""
    group: str = ""
    #: Extended attributes (POSIX ACLs among them), name to value.
    xattrs: dict[bytes, bytes] | None = None
    #: For a hard link: the path of the first entry of the snapshot with the same inode.
    hardlink: bytes | None = None
    #: The number of hard links to a file (recorded when more than one).
    nlink: int = 1
    #: The file has holes; restore writes zero blocks as holes.
    sparse: bool = False
    #: Device number of a device node.
    rdev: int = 0
    handle: Any = None
    #: The file-list line this entry was read from, if any (lets an unchanged entry be
    #: written again without encoding it).
    line: bytes | None = None

    def sort_key(self) -> bytes:
        """The order entries are kept in: by path components, compared as bytes.

        Separators become NUL, the lowest byte, which no name contains: comparing the keys
        as bytes then compares the paths component by component.
        """
        return self.path.replace(b"/", b"\0")


ErrorCallback = Callable[[bytes, Exception], None]


class Source(ABC):
    """A source of entries to back up.

    :attr identity: a stable description of what is backed up ("/home/ann/Documents"):
        an incremental backup joins the latest group of the same host and identity.
    A source that can also be restored to (the fsspec source) has an ``upload(local_path,
    path)`` method writing a restored file to ``path`` below its location.

    :attr warnings: optional ``list[str]`` of things worth telling that are not errors (a
        socket left out); the engine reports them after the scan.
    :attr ordered: ``scan`` yields entries sorted by :meth:`Entry.sort_key`, each directory
        before what it contains; the engine then compares them with the parent snapshot's
        entries in one streaming pass and skips unchanged files without reading them.
    :attr threaded_reads: :meth:`open` may be called, and the stream it returns read, on
        other threads than the one iterating :meth:`scan`, several at once and while the
        scan goes on: the engine then reads small files on its worker threads.
    :attr ranged_reads: the stream :meth:`open` returns can ``seek(offset)`` to any byte of
        the file without reading what comes before (a local file, a ranged GET): a
        distributed backup then reads one large file in parts on several workers.
    """

    identity: str = ""
    ordered: bool = False
    threaded_reads: bool = False
    ranged_reads: bool = False
    #: ``scan`` applies the exclude rules in :attr:`excludes` itself (so an excluded folder
    #: is never read); otherwise the engine filters what ``scan`` yields.
    applies_excludes: bool = False
    excludes: Any = None

    @abstractmethod
    def scan(self, on_error: ErrorCallback) -> Iterator[Entry]:
        """Yield the entries; report an entry that cannot be listed to ``on_error`` and go on."""

    @abstractmethod
    def open(self, entry: Entry) -> BinaryIO:
        """Open a file entry for reading; ``OSError`` if it cannot be read."""

    def close(self) -> None:
        """Release whatever the source holds."""


def check_relative_path(path: bytes) -> bytes:
    """Return ``path`` if it is a safe relative path, else raise ``ValueError``.

    Safe: not empty, no empty, ``.`` or ``..`` component, no NUL, not absolute.
    """
    framed = b"/" + path + b"/"
    if not path or b"\0" in path or b"//" in framed or b"/./" in framed or b"/../" in framed:
        raise ValueError(f'unsafe path "{display_name(path)}"')
    return path
