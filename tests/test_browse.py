"""Browsing: ``kvbackup ls``, ``diff`` and ``stats``, and the same in the Python API."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kvtools import init_repo, kvb, kvb_json, open_repo, write_tree

from kvbackup.errors import ExitCode


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = write_tree(
        tmp_path / "src",
        {
            "a.txt": b"alpha",
            "docs/b.txt": b"beta" * 10,
            "docs/c.txt": b"gamma",
            "touched.txt": b"same bytes",
            "chmod.sh": b"#!/bin/sh\n",
            "gone.txt": b"bye",
        },
    )
    os.symlink("a.txt", root / "link")
    (root / "chmod.sh").chmod(0o644)
    os.utime(root / "a.txt", ns=(1_600_000_000_000_000_000,) * 2)
    return root


@pytest.fixture
def location(tmp_path: Path, src: Path) -> str:
    path = str(tmp_path / "repo")
    init_repo(path).backup(src)
    return path


def test_ls_lists_every_entry_by_path(location: str, cache: Path) -> None:
    out = kvb("ls", "latest", "--repo", location, cache=cache).stdout.decode().splitlines()
    assert out == [
        "a.txt", "chmod.sh", "docs", "docs/b.txt", "docs/c.txt", "gone.txt", "link",
        "touched.txt",
    ]  # fmt: skip


def test_ls_long_shows_type_mode_size_mtime_and_link_target(location: str, cache: Path) -> None:
    lines = kvb("ls", "latest", "-l", "--repo", location, cache=cache).stdout.decode()
    rows = {line.split()[-1] if "->" not in line else "link": line for line in lines.splitlines()}
    assert rows["docs/b.txt"].split()[:2] == ["-rw-r--r--", "40"]
    assert rows["docs"].startswith("d")
    assert rows["link"].startswith("l") and rows["link"].endswith("link -> a.txt")
    assert "2020-09-13" in rows["a.txt"]


def test_ls_json_of_a_path_lists_what_is_under_it(location: str, cache: Path) -> None:
    rows = kvb_json("ls", "latest", "docs", "--repo", location, cache=cache)
    assert [(r["path"], r["type"], r["size"]) for r in rows] == [
        ("docs", "dir", 0),
        ("docs/b.txt", "file", 40),
        ("docs/c.txt", "file", 5),
    ]
    assert all({"mode", "mtime_ns"} <= set(r) for r in rows)


def test_ls_of_a_path_not_in_the_snapshot_is_an_error(location: str, cache: Path) -> None:
    done = kvb("ls", "latest", "doc", "--repo", location, cache=cache, expect=ExitCode.NOT_FOUND)
    assert "doc: not in snapshot" in done.stderr.decode()


def test_diff_reports_added_removed_modified_and_metadata_only(
    location: str, src: Path, cache: Path
) -> None:
    with open_repo(location) as repo:
        before = repo.resolve_snapshot("latest").id
        (src / "gone.txt").unlink()
        (src / "docs" / "new.txt").write_bytes(b"new")
        (src / "docs" / "b.txt").write_bytes(b"BETA" * 10)
        (src / "chmod.sh").chmod(0o755)
        os.utime(src / "touched.txt", ns=(1_700_000_000_000_000_000,) * 2)
        after = repo.backup(src).snapshot.id
    report = kvb_json("diff", before, after, "--repo", location, cache=cache)
    changes = {(c["path"], c["change"], tuple(c["fields"])) for c in report["changes"]}
    assert changes >= {
        ("gone.txt", "removed", ()),
        ("docs/new.txt", "added", ()),
        ("docs/b.txt", "modified", ("content", "mtime")),
        ("chmod.sh", "metadata", ("mode",)),
        ("touched.txt", "metadata", ("mtime",)),
    }
    assert {c[0] for c in changes} - {"docs", "."} == {
        "gone.txt", "docs/new.txt", "docs/b.txt", "chmod.sh", "touched.txt",
    }  # fmt: skip
    assert report["summary"]["added"] == 1 and report["summary"]["removed"] == 1
    text = kvb("diff", before, after, "--repo", location, cache=cache).stdout.decode()
    assert "- gone.txt\n" in text and "+ docs/new.txt\n" in text
    assert "M docs/b.txt  (content, mtime)" in text and "m chmod.sh  (mode)" in text


def test_diff_of_a_snapshot_with_itself_is_empty(location: str) -> None:
    with open_repo(location) as repo:
        assert repo.diff("latest", "latest").changes == []


def test_diff_of_snapshots_of_an_unordered_source(tmp_path: Path) -> None:
    with init_repo(str(tmp_path / "repo")) as repo:
        one = repo.backup([("z.txt", b"z"), ("a.txt", b"a"), ("m.txt", b"m")]).snapshot
        two = repo.backup([("m.txt", b"M"), ("b.txt", b"b"), ("z.txt", b"z")]).snapshot
        result = repo.diff(one, two)
    content = {(c.path, c.change) for c in result.changes if c.fields != ["mtime"]}
    assert content == {
        ("m.txt", "modified"),
        ("b.txt", "added"),
        ("a.txt", "removed"),
    }


def test_stats_of_the_repository_show_deduplication(
    location: str, src: Path, tmp_path: Path, cache: Path
) -> None:
    big = os.urandom(200_000)
    (src / "big.bin").write_bytes(big)
    with open_repo(location) as repo:
        repo.backup(src)
        repo.backup(src, rehash=True)  # same data again: nothing new stored
    stats = kvb_json("stats", "--repo", location, cache=cache)
    assert stats["snapshots"] == 3 and stats["groups"] == 1
    assert stats["logical_bytes"] > 2 * len(big)
    assert stats["unique_data_bytes"] < stats["logical_bytes"] / 1.9
    assert stats["dedup_ratio"] > 1.9
    assert stats["objects"]["packs"] == stats["packs"] > 0
    assert stats["objects"]["snapshots"] >= 3
    text = kvb("stats", "--repo", location, cache=cache).stdout.decode()
    assert "deduplication" in text and "stored size" in text


def test_stats_of_a_snapshot_count_its_files_chunks_and_packs(location: str, cache: Path) -> None:
    stats = kvb_json("stats", "latest", "--repo", location, cache=cache)
    assert (stats["files"], stats["dirs"], stats["symlinks"]) == (6, 1, 1)
    assert stats["logical_bytes"] == 5 + 40 + 5 + 10 + 10 + 3
    assert stats["chunks"] >= 6 and stats["packs"] >= 1 and stats["missing_chunks"] == 0
    assert stats["stored_bytes"] > 0
