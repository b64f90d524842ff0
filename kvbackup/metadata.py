"""Metadata beyond bytes: owners by name and id, extended attributes (POSIX ACLs among
them), sparse files, and applying it all to restored entries.

Everything here degrades gracefully: a platform or file system without xattrs, or a
restore not running as root, restores what it can and leaves the rest.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
from functools import lru_cache

from .sources import Entry

AS_ROOT = os.geteuid() == 0
_OWNER = (os.geteuid(), os.getegid())
HAS_XATTRS = hasattr(os, "listxattr")
#: On a restore not running as root only these namespaces can be written.
UNPRIVILEGED_XATTRS = (b"user.", b"system.posix_acl_access", b"system.posix_acl_default")


@lru_cache(maxsize=4096)
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return ""


@lru_cache(maxsize=4096)
def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except (KeyError, OverflowError):
        return ""


@lru_cache(maxsize=4096)
def _uid_of(name: str, fallback: int) -> int:
    try:
        return pwd.getpwnam(name).pw_uid if name else fallback
    except KeyError:
        return fallback


@lru_cache(maxsize=4096)
def _gid_of(name: str, fallback: int) -> int:
    try:
        return grp.getgrnam(name).gr_gid if name else fallback
    except KeyError:
        return fallback


def owner_ids(entry: Entry) -> tuple[int, int]:
    """The uid and gid to restore: by name where this system knows the name, else by id."""
    return _uid_of(entry.user, entry.uid), _gid_of(entry.group, entry.gid)


def read_xattrs(path: bytes, follow_symlinks: bool = False) -> dict[bytes, bytes] | None:
    """The extended attributes of ``path`` (``None`` if it has none, or they cannot be read)."""
    if not HAS_XATTRS:
        return None
    try:
        names = os.listxattr(path, follow_symlinks=follow_symlinks)
    except OSError:
        return None
    out: dict[bytes, bytes] = {}
    for name in names:
        with contextlib.suppress(OSError):
            out[os.fsencode(name)] = os.getxattr(path, name, follow_symlinks=follow_symlinks)
    return out or None


def _write_xattrs(target: int | bytes, entry: Entry, follow_symlinks: bool = True) -> None:
    if not entry.xattrs or not HAS_XATTRS:
        return
    for name, value in entry.xattrs.items():
        if not AS_ROOT and not name.startswith(UNPRIVILEGED_XATTRS):
            continue
        # A file system without xattrs (or this namespace) keeps the rest of the restore going.
        with contextlib.suppress(OSError):
            os.setxattr(target, name, value, follow_symlinks=follow_symlinks)


def _chown_wanted(entry: Entry) -> tuple[int, int] | None:
    if not AS_ROOT or entry.uid < 0:
        return None
    ids = owner_ids(entry)
    return None if ids == _OWNER and entry.uid == _OWNER[0] else ids


def apply_metadata(path: bytes, entry: Entry, is_link: bool = False) -> None:
    """Owner (as root), xattrs, mode and mtime of ``entry`` onto ``path``, not following
    links."""
    ids = _chown_wanted(entry)
    if ids is not None:
        with contextlib.suppress(OSError):
            os.lchown(path, *ids)
    _write_xattrs(path, entry, follow_symlinks=not is_link)
    if not is_link:
        os.chmod(path, stat.S_IMODE(entry.mode))
    os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=not is_link)


def apply_metadata_fd(fd: int, entry: Entry) -> None:
    """The same, through an open file: no path is looked up again."""
    ids = _chown_wanted(entry)
    if ids is not None:
        with contextlib.suppress(OSError):
            os.fchown(fd, *ids)
    _write_xattrs(fd, entry)
    os.fchmod(fd, stat.S_IMODE(entry.mode))
    os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))


def is_sparse(path: bytes, st: os.stat_result) -> bool:
    """The regular file has holes: fewer blocks than its size needs (a cheap test), then a
    hole before its end found with ``SEEK_HOLE``."""
    if st.st_size == 0 or st.st_blocks * 512 >= st.st_size or not hasattr(os, "SEEK_HOLE"):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        return os.lseek(fd, 0, os.SEEK_HOLE) < st.st_size
    except OSError:
        return False
    finally:
        os.close(fd)
