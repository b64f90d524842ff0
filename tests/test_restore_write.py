"""Restore's write path: temporary name then rename, never writing through what is already in
the target, overwrite policies, ``--delete``, ``--dry-run`` and ``--verify``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import snapshot_of
from kvtools import chunks_of, flip_byte, init_repo, kvb, kvb_json, open_repo, write_tree

from kvbackup.errors import ExitCode
from kvbackup.ops.restore_target import FileWriter, RestoreTarget
from kvbackup.sources import FILE, Entry

OLD = 1_500_000_000_000_000_000  # 2017: older than any snapshot here
NEW = 4_000_000_000_000_000_000  # 2096: newer than any snapshot here
SNAP_MTIME = 1_700_000_000_000_000_000


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def backed_up(tmp_path: Path) -> tuple[str, Path]:
    """A repository holding one snapshot of a small tree, and that tree."""
    src = write_tree(
        tmp_path / "src",
        {
            "a.txt": b"snapshot a\n",
            "dir/b.txt": b"snapshot b\n" * 1000,
            "dir/c.txt": b"snapshot c\n",
            "big.bin": os.urandom(200_000),
        },
    )
    for path in src.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(SNAP_MTIME, SNAP_MTIME))
    location = str(tmp_path / "repo")
    init_repo(location).backup(src)
    return location, src


def temp_leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob(".kvbackup-*")]


def test_a_damaged_chunk_leaves_the_file_already_in_the_target_untouched(
    backed_up: tuple[str, Path], tmp_path: Path, cache: Path
) -> None:
    location, _ = backed_up
    target = write_tree(tmp_path / "target", {"big.bin": b"the user's own file"})
    os.utime(target / "big.bin", ns=(OLD, OLD))
    repo = open_repo(location)
    snap = repo.resolve_snapshot("latest")
    flip_byte(repo, snap.group, chunks_of(repo, "latest", "big.bin")[-1])
    done = kvb(
        "restore", "latest", target, "--overwrite", "always", "--repo", location,
        cache=cache, expect=ExitCode.CORRUPT,
    )  # fmt: skip
    assert b"big.bin: not restored" in done.stderr
    assert (target / "big.bin").read_bytes() == b"the user's own file"
    assert (target / "a.txt").read_bytes() == b"snapshot a\n"
    assert temp_leftovers(target) == []


def test_a_hard_link_in_the_target_to_a_file_outside_is_replaced_not_written_through(
    backed_up: tuple[str, Path], tmp_path: Path, cache: Path
) -> None:
    location, _ = backed_up
    outside = write_tree(tmp_path / "outside", {"victim": b"must stay"})
    os.utime(outside / "victim", ns=(OLD, OLD))
    target = tmp_path / "target"
    target.mkdir()
    os.link(outside / "victim", target / "a.txt")
    kvb("restore", "latest", target, "--repo", location, cache=cache)
    assert (outside / "victim").read_bytes() == b"must stay"
    assert (target / "a.txt").read_bytes() == b"snapshot a\n"
    assert os.stat(target / "a.txt").st_ino != os.stat(outside / "victim").st_ino
    assert os.stat(outside / "victim").st_nlink == 1


def test_a_symlink_in_the_target_is_replaced_not_followed(
    backed_up: tuple[str, Path], tmp_path: Path, cache: Path
) -> None:
    location, _ = backed_up
    outside = write_tree(tmp_path / "outside", {"victim": b"must stay"})
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(outside / "victim", target / "a.txt")
    kvb("restore", "latest", target, "--overwrite", "always", "--repo", location, cache=cache)
    assert (outside / "victim").read_bytes() == b"must stay"
    assert not (target / "a.txt").is_symlink()
    assert (target / "a.txt").read_bytes() == b"snapshot a\n"


def existing_target(tmp_path: Path) -> Path:
    """A target holding an older copy, a newer copy, and an unchanged-looking copy (same
    size and mtime as the snapshot's, different bytes) of files in the snapshot."""
    target = write_tree(
        tmp_path / "target",
        {"a.txt": b"older a", "dir/c.txt": b"newer c", "dir/b.txt": b"X" * 11000},
    )
    os.utime(target / "a.txt", ns=(OLD, OLD))
    os.utime(target / "dir/c.txt", ns=(NEW, NEW))
    os.utime(target / "dir/b.txt", ns=(SNAP_MTIME, SNAP_MTIME))
    return target


@pytest.mark.parametrize(
    ("policy", "a_replaced", "c_replaced", "b_replaced"),
    [
        ("always", True, True, True),
        ("if-changed", True, True, False),
        ("if-newer", True, False, False),
        ("never", False, False, False),
    ],
)
def test_overwrite_policies(
    backed_up: tuple[str, Path],
    tmp_path: Path,
    cache: Path,
    policy: str,
    a_replaced: bool,
    c_replaced: bool,
    b_replaced: bool,
) -> None:
    location, src = backed_up
    target = existing_target(tmp_path)
    before = {p: (target / p).read_bytes() for p in ("a.txt", "dir/c.txt", "dir/b.txt")}
    out = kvb_json(
        "restore", "latest", target, "--overwrite", policy, "--repo", location, cache=cache
    )
    for path, replaced in (("a.txt", a_replaced), ("dir/c.txt", c_replaced),
                           ("dir/b.txt", b_replaced)):  # fmt: skip
        want = (src / path).read_bytes() if replaced else before[path]
        assert (target / path).read_bytes() == want, (policy, path)
    assert (target / "big.bin").read_bytes() == (src / "big.bin").read_bytes()
    kept = {k["path"] for k in out["kept"]}
    assert ("dir/c.txt" in kept) == (not c_replaced)


def test_the_default_policy_keeps_newer_files_and_says_so(
    backed_up: tuple[str, Path], tmp_path: Path, cache: Path
) -> None:
    location, src = backed_up
    target = existing_target(tmp_path)
    done = kvb("restore", "latest", target, "--repo", location, cache=cache)
    assert (target / "dir/c.txt").read_bytes() == b"newer c"
    assert (target / "a.txt").read_bytes() == (src / "a.txt").read_bytes()
    assert b"dir/c.txt: left as it is: the target's copy is newer" in done.stderr


def test_rerunning_a_restore_writes_nothing_again(
    backed_up: tuple[str, Path], tmp_path: Path, cache: Path
) -> None:
    location, _ = backed_up
    target = tmp_path / "target"
    first = kvb_json("restore", "latest", target, "--repo", location, cache=cache)
    second = kvb_json("restore", "latest", target, "--repo", location, cache=cache)
    assert first["files"] == 4 and first["unchanged"] == 0
    assert second["files"] == 0 and second["unchanged"] == 4 and second["bytes"] == 0


def test_delete_removes_what_the_snapshot_does_not_have(
    backed_up: tuple[str, Path], tmp_path: Path, cache: Path
) -> None:
    location, src = backed_up
    target = write_tree(
        tmp_path / "target",
        {"extra.txt": b"x", "dir/extra.txt": b"x", "gone/deep/file": b"x", "a.txt": b"keep?"},
    )
    os.symlink(tmp_path / "src", target / "dir" / "link-out")
    out = kvb_json("restore", "latest", target, "--delete", "--repo", location, cache=cache)
    assert sorted(out["deleted"]) == ["dir/extra.txt", "dir/link-out", "extra.txt", "gone"]
    assert snapshot_of(target).keys() == snapshot_of(src).keys()
    assert (src / "a.txt").exists()  # the symlink was removed, not followed
    # what was deleted from a folder did not change the times the folder was given
    assert os.stat(target / "dir").st_mtime_ns == os.stat(src / "dir").st_mtime_ns


def test_delete_with_paths_removes_only_below_them(
    backed_up: tuple[str, Path], tmp_path: Path, cache: Path
) -> None:
    location, _ = backed_up
    target = write_tree(tmp_path / "target", {"extra.txt": b"x", "dir/extra.txt": b"x"})
    kvb("restore", "latest", target, "dir", "--delete", "--repo", location, cache=cache)
    assert (target / "extra.txt").exists()
    assert not (target / "dir/extra.txt").exists()
    assert (target / "dir/b.txt").exists()


def test_dry_run_changes_nothing_and_says_what_it_would_do(
    backed_up: tuple[str, Path], tmp_path: Path, cache: Path
) -> None:
    location, _ = backed_up
    target = existing_target(tmp_path)
    (target / "extra.txt").write_bytes(b"x")
    before = snapshot_of(target)
    done = kvb(
        "restore", "latest", target, "--dry-run", "--delete", "--repo", location, cache=cache
    )
    assert snapshot_of(target) == before
    lines = done.stdout.decode().splitlines()
    assert "would write file a.txt" in lines
    assert "would write file big.bin" in lines
    assert "would delete extra.txt" in lines
    assert not any("dir/c.txt" in line for line in lines if line.startswith("would"))
    absent = tmp_path / "absent"
    kvb("restore", "latest", absent, "--dry-run", "--repo", location, cache=cache)
    assert not absent.exists()


def test_dry_run_reads_no_data(backed_up: tuple[str, Path], tmp_path: Path, cache: Path) -> None:
    location, _ = backed_up
    dry = kvb_json("restore", "latest", tmp_path / "t", "--dry-run", "--repo", location,
                   cache=cache)  # fmt: skip
    real = kvb_json("restore", "latest", tmp_path / "t", "--repo", location, cache=cache)
    assert real["requests"]["bytes_read"] > 200_000 > dry["requests"]["bytes_read"]


def test_verify_restores_the_same_bytes(
    backed_up: tuple[str, Path], tmp_path: Path, cache: Path
) -> None:
    location, src = backed_up
    kvb("restore", "latest", tmp_path / "t", "--verify", "--repo", location, cache=cache)
    assert snapshot_of(tmp_path / "t") == snapshot_of(src)


def test_a_file_that_does_not_read_back_right_never_takes_its_name(tmp_path: Path) -> None:
    """The read-back check runs before the rename: a mismatch leaves the old file."""
    (tmp_path / "f").write_bytes(b"old")
    failures: list[tuple[Entry, Exception]] = []
    done: list[Entry] = []
    writer = FileWriter(
        RestoreTarget(tmp_path),
        lambda entry, exc: failures.append((entry, exc)),
        done.append,
        verifier=lambda data, cid: False,
    )
    entry = Entry(path=b"f", kind=FILE, size=3, chunks=[b"\1" * 32])
    writer.write(entry, 0, b"new")
    writer.close()
    assert (tmp_path / "f").read_bytes() == b"old"
    assert done == [] and "do not match" in str(failures[0][1])
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_an_entry_claiming_bytes_but_no_chunks_is_damage_not_an_empty_file(
    tmp_path: Path,
) -> None:
    failures: list[Exception] = []
    writer = FileWriter(RestoreTarget(tmp_path), lambda e, exc: failures.append(exc), print)
    writer.write_empty(Entry(path=b"f", kind=FILE, size=10))
    assert not (tmp_path / "f").exists() and "10 bytes in no chunks" in str(failures[0])
