"""``kvbackup mount``: a read-only FUSE view of the snapshots, compared entry by entry with
the source; ranged reads fetch only the chunks they touch; clean unmount on signals."""

from __future__ import annotations

import contextlib
import filecmp
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import make_tree
from kvtools import chunks_of, cli_env, init_repo, open_repo

from kvbackup.errors import ExitCode

if not os.path.exists("/dev/fuse"):
    pytest.skip("/dev/fuse is absent: FUSE cannot mount here", allow_module_level=True)


@pytest.fixture(scope="module")
def backed_up(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("mount")
    src = make_tree(root / "src")
    (src / "large.bin").write_bytes(os.urandom(1 << 20))
    location = str(root / "repo")
    with init_repo(location) as repo:
        repo.backup(src)
    return location, src


class Mount:
    """A running ``kvbackup mount``; ``summary`` holds its JSON report once stopped."""

    def __init__(self, location: str, mountpoint: Path, cache: Path):
        mountpoint.mkdir(exist_ok=True)
        self.mountpoint = mountpoint
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kvbackup", "mount", mountpoint, "--repo", location, "--json"],
            env=cli_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not os.path.ismount(mountpoint):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"mount failed: {self.proc.communicate()[1].decode()}")
            time.sleep(0.05)
        self.summary: dict[str, Any] = {}

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err.decode()
        assert not os.path.ismount(self.mountpoint)
        self.summary = json.loads(out)


@contextlib.contextmanager
def mounted(location: str, mountpoint: Path, cache: Path, sig: int = signal.SIGTERM
            ) -> Iterator[Mount]:  # fmt: skip
    mount = Mount(location, mountpoint, cache)
    try:
        yield mount
    finally:
        if mount.proc.poll() is None:
            mount.stop(sig)


def test_every_file_and_symlink_reads_back_as_stored_and_ctrl_c_unmounts(
    backed_up: tuple[str, Path], tmp_path: Path
) -> None:
    location, src = backed_up
    with mounted(location, tmp_path / "mnt", tmp_path / "cache", signal.SIGINT) as mount:
        snapshots = os.listdir(mount.mountpoint / "snapshots")
        assert len(snapshots) == 1
        view = mount.mountpoint / "snapshots" / snapshots[0]
        assert os.readlink(mount.mountpoint / "latest") == f"snapshots/{snapshots[0]}"
        (host,) = os.listdir(mount.mountpoint / "hosts")
        source_dir = mount.mountpoint / "hosts" / host / str(src).replace("/", "%2F")
        assert sorted(os.listdir(source_dir)) == sorted([snapshots[0], "latest"])
        assert os.path.samefile(source_dir / "latest" / "docs", view / "docs")
        compared = 0
        for dirpath, dirnames, filenames in os.walk(os.fsencode(src)):
            rel = os.path.relpath(dirpath, os.fsencode(src))
            seen = os.path.join(os.fsencode(view), rel)
            assert sorted(os.listdir(seen)) == sorted(dirnames + filenames), rel
            for name in dirnames + filenames:
                want = os.lstat(os.path.join(dirpath, name))
                path = os.path.join(seen, name)
                got = os.lstat(path)
                assert stat.S_IFMT(got.st_mode) == stat.S_IFMT(want.st_mode), path
                assert stat.S_IMODE(got.st_mode) == stat.S_IMODE(want.st_mode), path
                assert got.st_mtime_ns == want.st_mtime_ns, path
                if stat.S_ISLNK(want.st_mode):
                    assert os.readlink(path) == os.readlink(os.path.join(dirpath, name))
                elif stat.S_ISREG(want.st_mode):
                    assert got.st_size == want.st_size, path
                    assert filecmp.cmp(os.path.join(dirpath, name), path, shallow=False), path
                compared += 1
        assert compared >= 15
        with pytest.raises(OSError):
            (view / "docs" / "new.txt").write_text("read-only")
    # It writes nothing but its read lock (so no prune starts under it), removed at the end.
    assert mount.summary["requests"]["put"] == 1
    assert mount.summary["requests"]["delete"] == 1


def test_a_byte_range_fetches_only_the_chunks_it_touches(
    backed_up: tuple[str, Path], tmp_path: Path
) -> None:
    location, src = backed_up
    offset, size = 300_000, 20_000
    with open_repo(location) as repo:
        chunks = chunks_of(repo, "latest", "large.bin")
    starts = [sum(c.raw_length for c in chunks[:n]) for n in range(len(chunks))]
    touched = [c for c, s in zip(chunks, starts, strict=True)
               if s < offset + size and s + c.raw_length > offset]  # fmt: skip
    assert 1 <= len(touched) < len(chunks) // 10

    def requests(read: bool) -> dict[str, int]:
        with mounted(location, tmp_path / f"mnt-{read}", tmp_path / f"cache-{read}") as mount:
            path = mount.mountpoint / "latest" / "large.bin"
            assert path.stat().st_size == 1 << 20
            with open(path, "rb") as fh:
                if read:
                    data = os.pread(fh.fileno(), size, offset)
                    assert data == (src / "large.bin").read_bytes()[offset : offset + size]
        return mount.summary["requests"]

    without, with_read = requests(False), requests(True)
    assert with_read["bytes_read"] - without["bytes_read"] == sum(c.length for c in touched)
    assert with_read["get"] - without["get"] == len({c.pack_id for c in touched})


def test_a_mount_point_that_is_not_an_empty_folder_is_refused(
    backed_up: tuple[str, Path], tmp_path: Path
) -> None:
    location, _ = backed_up
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "file").write_text("x")
    for where, message in ((tmp_path / "full", "must be an empty folder"),
                           (tmp_path / "file", "must be an existing folder"),
                           (tmp_path / "none", "must be an existing folder")):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "kvbackup", "mount", where, "--repo", location],
            env=cli_env(tmp_path / "cache"), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == ExitCode.USAGE, done.stderr
        assert done.stderr == f"kvbackup: error: {where}: the mount point {message}\n"


def test_a_missing_libfuse_names_what_to_install(
    backed_up: tuple[str, Path], tmp_path: Path
) -> None:
    location, _ = backed_up
    (tmp_path / "mnt").mkdir()
    env = cli_env(tmp_path / "cache") | {"FUSE_LIBRARY_NAME": "no-such-fuse-library"}
    done = subprocess.run(
        [sys.executable, "-m", "kvbackup", "mount", tmp_path / "mnt", "--repo", location],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == ExitCode.PLUGIN
    assert done.stderr.count("\n") == 1 and "apt-get install fuse3" in done.stderr
