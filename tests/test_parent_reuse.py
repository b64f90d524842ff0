"""An incremental backup carries unchanged files over from its parent's file list without
decoding it: what it carries must still be right, whatever the parent holds and whatever
changed in the tree (the real command on real trees, restores compared with the tree)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import PASSWORD, assert_same_tree, kvbackup, make_tree

from kvbackup import Repository
from kvbackup.core.writer import ChunkWriter
from kvbackup.errors import ExitCode
from kvbackup.format.envelope import ObjectType
from kvbackup.format.filelist import FileListWriter
from kvbackup.format.layout import snapshot_key
from kvbackup.format.snapshots import new_snapshot_id
from kvbackup.sources import FILE, Entry


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    kvbackup("init", path)
    return path


def backup(src: Path, repo: Path) -> dict:
    return json.loads(kvbackup("backup", src, "--repo", repo, "--json").stdout)


def restored(repo: Path, target: Path) -> Path:
    kvbackup("restore", "latest", target, "--repo", repo)
    return target


def test_a_file_rewritten_with_its_size_and_mtime_is_read_again(tmp_path: Path, repo: Path) -> None:
    src = make_tree(tmp_path / "src")
    readme = src / "docs" / "readme.txt"
    backup(src, repo)
    before = readme.stat()
    readme.write_text("HELLO WORLD\n" * 100)  # same size
    os.utime(readme, ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime
    again = backup(src, repo)
    assert again["stats"]["files_read"] == 1  # its ctime moved: the change is seen
    assert_same_tree(src, restored(repo, tmp_path / "out"))


def test_a_changed_mode_or_xattr_in_an_unchanged_folder_is_recorded(
    tmp_path: Path, repo: Path
) -> None:
    src = make_tree(tmp_path / "src")
    leaf = src / "docs" / "deep" / "er" / "still" / "leaf.txt"
    script = src / "script.sh"
    backup(src, repo)
    mtimes = {p: p.stat().st_mtime_ns for p in (leaf, script, leaf.parent)}
    script.chmod(0o700)
    os.setxattr(leaf, "user.tag", b"new")
    for path, mtime in mtimes.items():
        os.utime(path, ns=(mtime, mtime))
    again = backup(src, repo)
    assert again["stats"]["files_read"] == 2  # their ctimes moved
    out = restored(repo, tmp_path / "out")
    assert_same_tree(src, out)  # the new mode
    assert os.getxattr(out / leaf.relative_to(src), "user.tag") == b"new"
    os.removexattr(leaf, "user.tag")
    os.utime(leaf, ns=(mtimes[leaf], mtimes[leaf]))
    backup(src, repo)
    gone = restored(repo, tmp_path / "out2") / leaf.relative_to(src)
    assert "user.tag" not in os.listxattr(gone)


def test_unchanged_and_mutated_reruns_restore_the_tree(tmp_path: Path, repo: Path) -> None:
    src = make_tree(tmp_path / "src")
    os.link(src / "private", src / "private-link")
    os.setxattr(src / "empty.txt", "user.k", b"v")
    first = backup(src, repo)
    unchanged = backup(src, repo)
    assert unchanged["stats"]["files_read"] == 0
    assert unchanged["stats"]["files_unchanged"] == first["stats"]["files"] - 1  # the link
    assert unchanged["stats"]["chunks_new"] == 0  # the file list is the same bytes
    assert_same_tree(src, restored(repo, tmp_path / "out1"))
    (src / "docs" / "readme.txt").write_text("changed\n")
    (src / "docs" / "added.txt").write_text("added\n")
    (src / "script.sh").unlink()
    (src / "empty-dir" / "new").mkdir()
    mutated = backup(src, repo)
    assert mutated["stats"]["files_read"] == 2
    out = restored(repo, tmp_path / "out2")
    assert_same_tree(src, out)
    assert os.getxattr(out / "empty.txt", "user.k") == b"v"
    assert os.stat(out / "private").st_ino == os.stat(out / "private-link").st_ino


def rewrite_parent(repo_path: Path, edit: Callable[[bytes], bytes]) -> None:
    """Make the latest snapshot's file list again with ``edit`` applied to every line, as a
    newer complete snapshot of the same source (what a hostile writer with the key could
    do)."""
    repo = Repository.open(repo_path, password=PASSWORD)
    core = repo.core
    snap = repo.snapshots()[-1]
    index, _ = core.load_index(snap.group)
    lines = [e.line for e in core.iter_entries(snap, index)]
    writer = ChunkWriter(core, snap.group, index, core.codec, repo.config.pack_size)
    filelist = FileListWriter(lambda data: writer.add(ObjectType.METADATA, data))
    for line in lines:
        assert line is not None
        filelist.add(Entry(path=b"-", kind=FILE), edit(line))
    refs = filelist.close()
    writer.finish()
    crafted = dataclasses.replace(
        snap,
        id=new_snapshot_id(time.time()),
        filelist=[ref.id.hex() for ref in refs if ref.id is not None],
    )
    key = snapshot_key(crafted.id, final=True)
    core.put_object(key, ObjectType.SNAPSHOT, json.dumps(crafted.to_json()).encode())
    repo.close()


def test_a_malformed_line_of_a_file_in_the_parent_is_a_one_line_corruption_error(
    tmp_path: Path, repo: Path
) -> None:
    src = make_tree(tmp_path / "src")
    backup(src, repo)

    def spoil(line: bytes) -> bytes:
        record = json.loads(line)
        if record.get("p") == "private":
            record["mt"] = 10**30
        return json.dumps(record, separators=(",", ":")).encode()

    rewrite_parent(repo, spoil)
    done = kvbackup("backup", src, "--repo", repo, check=False)
    assert done.returncode == ExitCode.CORRUPT, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "file list: line" in done.stderr and "private: mtime_ns out of range" in done.stderr


def test_a_parent_in_another_encoding_is_decoded_and_still_carried_over(
    tmp_path: Path, repo: Path
) -> None:
    src = make_tree(tmp_path / "src")
    backup(src, repo)

    def reencode(line: bytes) -> bytes:  # spaces, upper-case ids: valid, not as written
        record = json.loads(line)
        record["c"] = [c.upper() for c in record.get("c", [])]
        return json.dumps(record).encode()

    rewrite_parent(repo, reencode)
    again = backup(src, repo)
    assert again["stats"]["files_read"] == 0
    assert_same_tree(src, restored(repo, tmp_path / "out"))
