"""Metadata beyond bytes, end to end: hard links, xattrs and POSIX ACLs, sparse files,
FIFOs, device nodes and sockets, owners; ``verify --full`` and ``diff`` notice each."""

from __future__ import annotations

import os
import pwd
import socket
import stat
import struct
from pathlib import Path

import pytest
from kvtools import kvb, kvb_json, open_repo, write_tree

from kvbackup.errors import ExitCode
from kvbackup.metadata import owner_ids
from kvbackup.sources import FILE, Entry

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
NOBODY = pwd.getpwnam("nobody")


def acl_with_user(uid: int) -> bytes:
    """A ``system.posix_acl_access`` value granting ``uid`` read access (Linux xattr form)."""
    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 4, uid), (0x04, 4, 0xFFFFFFFF),
               (0x10, 4, 0xFFFFFFFF), (0x20, 4, 0xFFFFFFFF)]  # fmt: skip
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    location = tmp_path / "repo"
    kvb("init", location, cache=tmp_path / "cache")
    return location


def backup(src: Path, repo: Path, tmp: Path, expect: int = 0) -> dict:  # type: ignore[type-arg]
    return kvb_json("backup", src, "--repo", repo, cache=tmp / "cache", expect=expect)  # type: ignore[no-any-return]


def restore(repo: Path, target: Path, tmp: Path, *args: str) -> str:
    done = kvb("restore", "latest", target, *args, "--repo", repo, cache=tmp / "cache")
    return done.stderr.decode()


def test_hard_links_are_stored_once_and_restored_as_hard_links(tmp_path: Path, repo: Path) -> None:
    src = write_tree(tmp_path / "src", {"a/one": os.urandom(100_000), "solo": b"solo"})
    os.link(src / "a/one", src / "two")
    os.link(src / "a/one", src / "a/three")
    outside = tmp_path / "outside"
    outside.write_bytes(b"linked from outside")
    os.link(outside, src / "out-link")
    out = backup(src, repo, tmp_path)
    assert out["stats"]["hardlinks"] == 2 and out["stats"]["files_read"] == 3
    restore(repo, tmp_path / "r", tmp_path)
    r = tmp_path / "r"
    inodes = {os.stat(r / p).st_ino for p in ("a/one", "a/three", "two")}
    assert len(inodes) == 1 and os.stat(r / "two").st_nlink == 3
    assert (r / "two").read_bytes() == (src / "a/one").read_bytes()
    assert os.stat(r / "out-link").st_nlink == 1
    assert (r / "out-link").read_bytes() == b"linked from outside"
    # a link restored without the first path of its inode still gets its bytes
    restore(repo, tmp_path / "part", tmp_path, "two")
    assert (tmp_path / "part/two").read_bytes() == (src / "a/one").read_bytes()
    again = backup(src, repo, tmp_path)
    assert again["stats"]["files_read"] == 0 and again["stats"]["hardlinks"] == 2


def test_xattrs_and_acls_are_restored(tmp_path: Path, repo: Path) -> None:
    src = write_tree(tmp_path / "src", {"f": b"x", "d/g": b"y"})
    os.setxattr(src / "f", "user.note", b"\x00binary\xff")
    os.setxattr(src / "d", "user.dir", b"on a folder")
    acl = acl_with_user(NOBODY.pw_uid)
    os.setxattr(src / "f", "system.posix_acl_access", acl)
    backup(src, repo, tmp_path)
    restore(repo, tmp_path / "r", tmp_path)
    r = tmp_path / "r"
    assert os.getxattr(r / "f", "user.note") == b"\x00binary\xff"
    assert os.getxattr(r / "d", "user.dir") == b"on a folder"
    assert os.getxattr(r / "f", "system.posix_acl_access") == acl
    assert kvb("verify", "--full", "latest", src, "--repo", repo, cache=tmp_path / "cache")


def test_sparse_files_are_restored_sparse(tmp_path: Path, repo: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(4096)
    with open(src / "sparse.img", "wb") as fh:
        fh.truncate(20 << 20)
        fh.seek(8 << 20)
        fh.write(data)
    assert os.stat(src / "sparse.img").st_blocks * 512 < 1 << 20
    backup(src, repo, tmp_path)
    restore(repo, tmp_path / "r", tmp_path)
    restored = tmp_path / "r/sparse.img"
    st = os.stat(restored)
    assert st.st_size == 20 << 20
    assert st.st_blocks * 512 <= 64 << 10, f"{st.st_blocks * 512} bytes on disk"
    with open(restored, "rb") as fh:
        fh.seek(8 << 20)
        assert fh.read(4096) == data
        fh.seek(0)
        assert fh.read(1 << 20) == bytes(1 << 20)


@as_root
def test_fifos_and_devices_are_recreated_and_sockets_skipped_with_a_warning(
    tmp_path: Path, repo: Path
) -> None:
    src = write_tree(tmp_path / "src", {"f": b"x"})
    os.mkfifo(src / "pipe", 0o640)
    os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.fspath(src / "sock"))
    try:
        done = kvb("backup", src, "--repo", repo, cache=tmp_path / "cache")
    finally:
        sock.close()
    assert b"sock: a socket, not backed up" in done.stderr
    restore(repo, tmp_path / "r", tmp_path)
    pipe, null = os.lstat(tmp_path / "r/pipe"), os.lstat(tmp_path / "r/null")
    assert stat.S_ISFIFO(pipe.st_mode) and stat.S_IMODE(pipe.st_mode) == 0o640
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert not (tmp_path / "r/sock").exists()
    os.unlink(src / "sock")
    kvb("verify", "--full", "latest", src, "--repo", repo, cache=tmp_path / "cache")


@as_root
def test_owners_are_restored_by_name_then_id(tmp_path: Path, repo: Path) -> None:
    src = write_tree(tmp_path / "src", {"f": b"x"})
    os.chown(src / "f", NOBODY.pw_uid, NOBODY.pw_gid)
    backup(src, repo, tmp_path)
    restore(repo, tmp_path / "r", tmp_path)
    st = os.stat(tmp_path / "r/f")
    assert (st.st_uid, st.st_gid) == (NOBODY.pw_uid, NOBODY.pw_gid)
    by_name = Entry(path=b"f", kind=FILE, uid=12345, gid=12345, user="nobody", group="")
    assert owner_ids(by_name) == (NOBODY.pw_uid, 12345)
    unknown = Entry(path=b"f", kind=FILE, uid=12345, gid=54321, user="no-such-user-here")
    assert owner_ids(unknown) == (12345, 54321)


def test_verify_full_and_diff_notice_metadata_changes(tmp_path: Path, repo: Path) -> None:
    src = write_tree(tmp_path / "src", {"f": b"x", "g": b"y", "h": b"z"})
    os.setxattr(src / "f", "user.tag", b"one")
    os.link(src / "g", src / "g2")
    backup(src, repo, tmp_path)
    os.setxattr(src / "f", "user.tag", b"two")
    os.unlink(src / "g2")
    (src / "g2").write_bytes(b"y")
    os.utime(src / "g2", ns=(os.stat(src / "g").st_mtime_ns,) * 2)
    if os.geteuid() == 0:
        os.chown(src / "h", NOBODY.pw_uid, NOBODY.pw_gid)
    out = kvb_json("verify", "--full", "latest", src, "--repo", repo, cache=tmp_path / "cache",
                   expect=ExitCode.DIFFERENCES)  # fmt: skip
    kinds = {(d["path"], d["kind"]) for d in out["differences"]}
    assert ("f", "xattrs") in kinds and ("g2", "hardlink") in kinds
    if os.geteuid() == 0:
        assert ("h", "owner") in kinds
    backup(src, repo, tmp_path)
    ids = [s.id for s in open_repo(str(repo)).snapshots()]
    diff = kvb_json("diff", ids[0], ids[1], "--repo", repo, cache=tmp_path / "cache")
    fields = {c["path"]: c["fields"] for c in diff["changes"]}
    assert "xattrs" in fields["f"] and "hardlink" in fields["g2"]


def test_a_file_that_changes_size_while_read_is_reported_and_recorded(
    tmp_path: Path, repo: Path
) -> None:
    """``/proc/version`` says 0 bytes when listed and has more when read."""
    out = kvb_json("backup", "/proc/version", "--repo", repo, cache=tmp_path / "cache",
                   expect=ExitCode.PARTIAL)  # fmt: skip
    assert "changed size while being read" in out["skipped"][0]["error"]
    restore(repo, tmp_path / "r", tmp_path)
    assert (tmp_path / "r/proc/version").read_bytes() == Path("/proc/version").read_bytes()
