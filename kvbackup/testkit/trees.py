"""Source trees for backup tests, and the comparison a restore must pass.

:func:`make_tree` builds what real trees have and naive code trips over: nested folders,
Unicode and non-UTF-8 names, empty files and folders, symlinks (a dangling one too), odd
modes, a multi-MiB file. :func:`assert_same_tree` compares two trees by bytes and metadata
(type, mode, mtime, link target, directory mtimes included).
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SourceTree", "assert_same_tree", "make_tree", "snapshot_of", "write_tree"]

#: Size of the large file :func:`make_tree` writes (several chunks, more than one pack).
LARGE_FILE_SIZE = 3 << 20


def make_tree(root: Path, *, large_file_size: int = LARGE_FILE_SIZE) -> Path:
    """A small tree with what a real one has: nested folders, Unicode and non-UTF-8 names,
    empty files and folders, symlinks (dangling too), odd modes, a multi-MiB file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "docs" / "deep" / "er" / "still").mkdir(parents=True)
    (root / "docs" / "readme.txt").write_text("hello world\n" * 100)
    (root / "docs" / "deep" / "er" / "still" / "leaf.txt").write_text("leaf")
    (root / "ünïcødé 文件.txt").write_text("unicode name")
    bad = os.path.join(os.fsencode(root), b"latin1-\xe9t\xe9.bin")
    # Filesystems that insist on UTF-8 names (macOS's APFS) refuse this one: leave it out.
    with contextlib.suppress(OSError), open(bad, "wb") as fh:
        fh.write(b"not utf-8 name")
    (root / "empty.txt").write_bytes(b"")
    (root / "empty-dir").mkdir()
    (root / "script.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "script.sh").chmod(0o750)
    (root / "private").write_text("secret")
    (root / "private").chmod(0o600)
    (root / "big.bin").write_bytes(os.urandom(large_file_size))
    os.symlink("docs/readme.txt", root / "link-to-readme")
    os.symlink("../nowhere", root / "dangling")
    os.utime(root / "docs" / "readme.txt", ns=(1_600_000_000_123_456_789,) * 2)
    return root


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` (relative path -> content) under ``root``, making folders."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def snapshot_of(root: Path) -> dict[bytes, tuple[Any, ...]]:
    """Everything a restore must reproduce: per relative path, type, mode, mtime, content or
    link target (directory mtimes included)."""
    out: dict[bytes, tuple[Any, ...]] = {}
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(full), st.st_mtime_ns)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            else:
                with open(full, "rb") as fh:
                    data = fh.read()
                out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, data)
    return out


def assert_same_tree(expected: Path, actual: Path) -> None:
    """Raise ``AssertionError`` naming the first difference unless ``actual`` has the same
    entries as ``expected``, with the same type, mode, mtime and bytes or link target."""
    want, got = snapshot_of(expected), snapshot_of(actual)
    if sorted(got) != sorted(want):
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        raise AssertionError(f"missing {missing[:5]}, extra {extra[:5]}")
    for path, value in want.items():
        if got[path] != value:
            raise AssertionError(f"{path!r} differs: {got[path][:3]} != {value[:3]}")


@dataclass
class SourceTree:
    """A tree built by :func:`make_tree` at ``path``, to back up and compare restores with."""

    path: Path

    def assert_restored(self, target: Path | str) -> None:
        """Raise ``AssertionError`` unless ``target`` holds this tree, bytes and metadata."""
        assert_same_tree(self.path, Path(target))

    def __fspath__(self) -> str:
        return str(self.path)
