"""Partial restore (paths, --include, --exclude) and ``kvbackup cat``: only what is asked
for is written, and only the byte ranges it needs are read."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from kvtools import chunks_of, init_repo, kvb, kvb_json, open_repo, repo_location, write_tree

from kvbackup.errors import ExitCode, PathNotFoundError


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def tree(tmp_path: Path) -> tuple[str, Path]:
    src = write_tree(
        tmp_path / "src",
        {
            "docs/a.txt": b"a" * 100,
            "docs/b.md": b"b" * 100,
            "docs/old/c.txt": b"c" * 100,
            "photos/p1.jpg": os.urandom(20_000),
            "photos/p2.jpg": os.urandom(20_000),
            "readme.txt": b"read me",
        },
    )
    location = str(tmp_path / "repo")
    init_repo(location).backup(src)
    return location, src


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_restoring_one_file_reads_far_fewer_bytes_than_a_full_restore(
    kind: str, request: Any, tmp_path: Path, monkeypatch: Any, cache: Path
) -> None:
    location = repo_location(kind, request, tmp_path, monkeypatch)
    files = {f"data/f{i:02d}.bin": os.urandom(40_000) for i in range(40)}
    src = write_tree(tmp_path / "src", files)
    init_repo(location).backup(src)
    full = kvb_json("restore", "latest", tmp_path / "all", "--repo", location, cache=cache)
    one = kvb_json(
        "restore", "latest", tmp_path / "one", "data/f17.bin", "--repo", location, cache=cache
    )
    assert files_under(tmp_path / "one") == {"data/f17.bin"}
    assert (tmp_path / "one/data/f17.bin").read_bytes() == files["data/f17.bin"]
    assert one["files"] == 1 and full["files"] == 40
    assert full["requests"]["bytes_read"] > 1_600_000
    assert one["requests"]["bytes_read"] * 10 < full["requests"]["bytes_read"]


def test_a_path_restores_that_folder_and_everything_in_it(
    tree: tuple[str, Path], tmp_path: Path, cache: Path
) -> None:
    location, src = tree
    kvb("restore", "latest", tmp_path / "out", "docs/", "--repo", location, cache=cache)
    assert files_under(tmp_path / "out") == {"docs/a.txt", "docs/b.md", "docs/old/c.txt"}
    assert (tmp_path / "out/docs/old/c.txt").read_bytes() == (src / "docs/old/c.txt").read_bytes()


def test_several_paths_restore_each_of_them(tree: tuple[str, Path], tmp_path: Path) -> None:
    location, _ = tree
    with open_repo(location) as repo:
        result = repo.restore("latest", tmp_path / "out", paths=["readme.txt", "photos/p2.jpg"])
    assert files_under(tmp_path / "out") == {"readme.txt", "photos/p2.jpg"}
    assert result.files == 2


def test_include_and_exclude_globs_select_entries(
    tree: tuple[str, Path], tmp_path: Path, cache: Path
) -> None:
    location, _ = tree
    kvb("restore", "latest", tmp_path / "inc", "--include", "*.txt", "-r", location, cache=cache)
    assert files_under(tmp_path / "inc") == {"docs/a.txt", "docs/old/c.txt", "readme.txt"}
    kvb(
        "restore", "latest", tmp_path / "exc", "docs", "--exclude", "old", "-r", location,
        cache=cache,
    )  # fmt: skip
    assert files_under(tmp_path / "exc") == {"docs/a.txt", "docs/b.md"}


def test_a_path_that_is_not_in_the_snapshot_is_a_clear_error(
    tree: tuple[str, Path], tmp_path: Path, cache: Path
) -> None:
    location, _ = tree
    done = kvb(
        "restore", "latest", tmp_path / "out", "docs/nope.txt", "-r", location,
        cache=cache, expect=ExitCode.NOT_FOUND,
    )  # fmt: skip
    assert "docs/nope.txt: not in snapshot" in done.stderr.decode()
    assert files_under(tmp_path / "out") == set()
    with open_repo(location) as repo, pytest.raises(PathNotFoundError):
        repo.restore("latest", tmp_path / "out2", paths=["doc"])  # a prefix is not a path


def test_cat_writes_one_files_bytes_to_stdout(tmp_path: Path, cache: Path) -> None:
    content = bytes(range(256)) * 300 + b"\r\n\x00\xff"  # several chunks, not text
    src = write_tree(tmp_path / "src", {"bin/blob.dat": content, "other": b"o"})
    location = str(tmp_path / "repo")
    with init_repo(location) as repo:
        snap = repo.backup(src).snapshot.id
        assert len(chunks_of(repo, snap, "bin/blob.dat")) > 1
    done = kvb("cat", snap, "bin/blob.dat", "--repo", location, cache=cache)
    assert done.stdout == content


def test_cat_of_a_missing_path_or_a_folder_is_an_error(tree: tuple[str, Path], cache: Path) -> None:
    location, _ = tree
    done = kvb("cat", "latest", "docs/zzz", "-r", location, cache=cache, expect=15)
    assert "docs/zzz: not in snapshot" in done.stderr.decode()
    done = kvb("cat", "latest", "docs", "-r", location, cache=cache, expect=15)
    assert "is a directory" in done.stderr.decode()


def test_cat_in_the_api_streams_the_bytes(tree: tuple[str, Path]) -> None:
    location, src = tree
    with open_repo(location) as repo:
        assert b"".join(repo.cat("latest", "photos/p1.jpg")) == (src / "photos/p1.jpg").read_bytes()
        with pytest.raises(PathNotFoundError):
            repo.cat("latest", "photos/p3.jpg")
