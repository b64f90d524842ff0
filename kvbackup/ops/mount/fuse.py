"""Serving a :class:`~kvbackup.ops.mount.tree.SnapshotTree` through FUSE (libfuse 3, via mfusepy).

mfusepy is an optional dependency (the ``mount`` extra) and needs the libfuse shared
library and ``/dev/fuse``; :func:`check_fuse` says what is missing in one line.
"""

from __future__ import annotations

import errno
import os
import shutil
from typing import Any

from ...display import display_name
from ...errors import ExitCode, KvbackupError, PluginError
from .tree import FsError, SnapshotTree

INSTALL_HINT = "install libfuse 3 (Debian/Ubuntu: apt-get install fuse3; Fedora: dnf install fuse3)"


class MountError(KvbackupError):
    """The mount point cannot be used."""

    exit_code = ExitCode.USAGE


def check_fuse() -> Any:
    """The ``mfusepy`` module, ready to mount; :class:`PluginError` naming what to install
    if the binding, the libfuse library or ``/dev/fuse`` is missing."""
    if not os.path.exists("/dev/fuse"):
        raise PluginError(f"/dev/fuse is missing: load the fuse kernel module, or {INSTALL_HINT}")
    try:
        import mfusepy
    except ImportError:
        raise PluginError(
            "kvbackup mount needs the mfusepy package: pip install 'kvbackup[mount]'"
        ) from None
    except OSError:  # mfusepy found no libfuse shared library
        raise PluginError(f"the libfuse library is missing: {INSTALL_HINT}") from None
    if os.geteuid() != 0 and not shutil.which("fusermount3") and not shutil.which("fusermount"):
        raise PluginError(f"fusermount3 is missing: {INSTALL_HINT}")
    return mfusepy


def check_mountpoint(path: str) -> None:
    """Refuse a mount point that is not an existing, empty folder."""
    shown = display_name(path)
    if not os.path.isdir(path):
        raise MountError(f"{shown}: the mount point must be an existing folder")
    if os.path.ismount(path):
        raise MountError(f"{shown}: something is mounted there already")
    if os.listdir(path):
        raise MountError(f"{shown}: the mount point must be an empty folder")


def _errno_of(exc: Exception) -> int:
    return exc.errno if isinstance(exc, OSError) and exc.errno else errno.EIO


def make_operations(mfusepy: Any, tree: SnapshotTree) -> Any:
    """An ``mfusepy.Operations`` serving ``tree`` read-only."""

    class Operations(mfusepy.Operations):
        use_ns = True

        def _node(self, path: str) -> Any:
            try:
                return tree.lookup(os.fsencode(path))
            except FsError as exc:
                raise mfusepy.FuseOSError(_errno_of(exc)) from None

        def getattr(self, path: str, fh: Any = None) -> dict[str, int]:
            attrs = self._node(path).attributes()
            attrs.setdefault("st_uid", os.getuid())
            attrs.setdefault("st_gid", os.getgid())
            return attrs

        def readdir(self, path: str, fh: Any) -> list[str]:
            try:
                names = tree.listdir(os.fsencode(path))
            except FsError as exc:
                raise mfusepy.FuseOSError(_errno_of(exc)) from None
            return [".", "..", *(os.fsdecode(n) for n in names)]

        def readlink(self, path: str) -> str:
            node = self._node(path)
            if node.target is None:
                raise mfusepy.FuseOSError(errno.EINVAL)
            return os.fsdecode(node.target)

        def open(self, path: str, flags: int) -> int:
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_TRUNC):
                raise mfusepy.FuseOSError(errno.EROFS)
            self._node(path)
            return 0

        def read(self, path: str, size: int, offset: int, fh: Any) -> bytes:
            try:
                return tree.read(self._node(path), offset, size)
            except FsError as exc:
                raise mfusepy.FuseOSError(_errno_of(exc)) from None

        def statfs(self, path: str) -> dict[str, int]:
            return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255}

    return Operations()


def serve(tree: SnapshotTree, mountpoint: str, mfusepy: Any, debug: bool = False) -> None:
    """Mount ``tree`` read-only at ``mountpoint`` and serve it until unmounted, or until
    SIGINT/SIGTERM (libfuse then unmounts)."""
    try:
        mfusepy.FUSE(
            make_operations(mfusepy, tree),
            mountpoint,
            foreground=True,
            ro=True,
            direct_io=True,  # reads reach us as asked: no read-ahead beyond the range read
            fsname="kvbackup",
            subtype="kvbackup",
            debug=debug,
        )
    except RuntimeError as exc:
        # libfuse's main loop reports an exit by signal as an error; the mount is gone
        # either way. Anything else (the mount itself failed) has been printed by libfuse.
        if os.path.ismount(mountpoint):
            raise KvbackupError(f"{display_name(mountpoint)}: FUSE failed ({exc})") from None
        if str(exc) not in ("8", "7"):
            raise KvbackupError(
                f"{display_name(mountpoint)}: could not be mounted (FUSE error {exc})"
            ) from None
