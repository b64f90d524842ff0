"""Helpers shared by the engine and end-to-end tests: trees, comparisons, the CLI."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

PASSWORD = "correct horse battery staple"


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for running ``kvbackup``: a test password, a cheap KDF, no stray repo."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KVBACKUP_")}
    env.update(KVBACKUP_PASSWORD=PASSWORD, KVBACKUP_TEST_FAST_KDF="1")
    env.update(extra)
    return env


def kvbackup(
    *args: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    check: bool = True,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``kvbackup`` command; with ``check``, fail on a non-zero exit."""
    exe = shutil.which("kvbackup")
    cmd = [exe] if exe else [sys.executable, "-m", "kvbackup"]
    done = subprocess.run(
        [*cmd, *map(str, args)],
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"kvbackup {args} exited {done.returncode}:\n{done.stderr}")
    return done


def make_tree(root: Path) -> Path:
    """A small tree with what a real one has: nested folders, Unicode and non-UTF-8 names,
    empty files and folders, symlinks (dangling too), odd modes, a multi-MiB file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "docs" / "deep" / "er" / "still").mkdir(parents=True)
    (root / "docs" / "readme.txt").write_text("hello world\n" * 100)
    (root / "docs" / "deep" / "er" / "still" / "leaf.txt").write_text("leaf")
    (root / "ünïcødé 文件.txt").write_text("unicode name")
    bad = os.path.join(os.fsencode(root), b"latin1-\xe9t\xe9.bin")
    with open(bad, "wb") as fh:
        fh.write(b"not utf-8 name")
    (root / "empty.txt").write_bytes(b"")
    (root / "empty-dir").mkdir()
    (root / "script.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "script.sh").chmod(0o750)
    (root / "private").write_text("secret")
    (root / "private").chmod(0o600)
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    os.symlink("docs/readme.txt", root / "link-to-readme")
    os.symlink("../nowhere", root / "dangling")
    os.utime(root / "docs" / "readme.txt", ns=(1_600_000_000_123_456_789,) * 2)
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
    want, got = snapshot_of(expected), snapshot_of(actual)
    assert sorted(got) == sorted(want), (
        f"missing {sorted(set(want) - set(got))[:5]}, extra {sorted(set(got) - set(want))[:5]}"
    )
    for path, value in want.items():
        assert got[path] == value, f"{path!r} differs: {got[path][:3]} != {value[:3]}"
