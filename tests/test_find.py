"""``kvbackup find``: globs over names across snapshots, snapshot filters, mtime bounds,
JSON, and chunk lookups."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kvtools import chunks_of, init_repo, kvb, kvb_json, write_tree

DAY_2020 = 1_600_000_000_000_000_000  # 2020-09-13
DAY_2023 = 1_700_000_000_000_000_000  # 2023-11-14


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def repo_with_two_hosts(tmp_path: Path) -> tuple[str, Path, Path]:
    """Snapshots of two sources: ``laptop`` backs up ``photos`` twice (a file added in
    between), ``server`` backs up ``etc`` once."""
    photos = write_tree(
        tmp_path / "photos",
        {"2020/beach.jpg": b"j" * 3000, "2020/notes.txt": b"n", "Cat.JPG": b"meow"},
    )
    etc = write_tree(tmp_path / "etc", {"hosts": b"127.0.0.1 localhost", "ssl/cert.pem": b"pem"})
    os.utime(photos / "2020" / "beach.jpg", ns=(DAY_2020, DAY_2020))
    os.utime(photos / "Cat.JPG", ns=(DAY_2023, DAY_2023))
    location = str(tmp_path / "repo")
    with init_repo(location) as repo:
        repo.backup(photos, host="laptop")
        (photos / "2020" / "later.jpg").write_bytes(b"later")
        repo.backup(photos, host="laptop")
        repo.backup(etc, host="server")
    return location, photos, etc


def test_find_matches_names_in_every_snapshot_with_size_and_mtime(
    repo_with_two_hosts: tuple[str, Path, Path], cache: Path
) -> None:
    location, photos, _ = repo_with_two_hosts
    rows = kvb_json("find", "*.jpg", "--repo", location, cache=cache)
    found = sorted((r["path"], r["host"]) for r in rows)
    # case-sensitive: Cat.JPG is not a match; later.jpg only in the second snapshot
    assert found == [
        ("2020/beach.jpg", "laptop"),
        ("2020/beach.jpg", "laptop"),
        ("2020/later.jpg", "laptop"),
    ]
    beach = next(r for r in rows if r["path"] == "2020/beach.jpg")
    assert (beach["size"], beach["mtime_ns"], beach["type"]) == (3000, DAY_2020, "file")
    assert beach["source"] == str(photos)
    assert len({r["snapshot"] for r in rows}) == 2


def test_find_prints_snapshot_path_size_and_mtime(
    repo_with_two_hosts: tuple[str, Path, Path], cache: Path
) -> None:
    location, _, _ = repo_with_two_hosts
    out = kvb("find", "hosts", "--repo", location, cache=cache).stdout.decode().splitlines()
    assert len(out) == 1
    snapshot, path, size, unit, day, _clock = out[0].split()
    assert (path, size, unit) == ("hosts", "19", "B")
    assert snapshot == kvb_json("snapshots", "--repo", location, cache=cache)[-1]["id"]
    assert len(day) == 10


def test_find_with_a_slash_matches_whole_paths_and_ignore_case_folds(
    repo_with_two_hosts: tuple[str, Path, Path], cache: Path
) -> None:
    location, _, _ = repo_with_two_hosts
    rows = kvb_json("find", "ssl/*", "--repo", location, cache=cache)
    assert [r["path"] for r in rows] == ["ssl/cert.pem"]
    rows = kvb_json("find", "-i", "cat.jpg", "--repo", location, cache=cache)
    assert [r["path"] for r in rows] == ["Cat.JPG", "Cat.JPG"]


def test_find_filters_by_host_path_and_snapshot(
    repo_with_two_hosts: tuple[str, Path, Path], cache: Path
) -> None:
    location, photos, etc = repo_with_two_hosts
    assert kvb_json("find", "*", "--host", "server", "--repo", location, cache=cache) == [
        row for row in kvb_json("find", "*", "--path", str(etc), "--repo", location, cache=cache)
    ]
    assert {r["host"] for r in kvb_json("find", "*", "--host", "server", "--repo", location,
                                        cache=cache)} == {"server"}  # fmt: skip
    first = kvb_json("snapshots", "--repo", location, cache=cache)[0]["id"]
    rows = kvb_json("find", "*.jpg", "--snapshot", first, "--repo", location, cache=cache)
    assert [(r["snapshot"], r["path"]) for r in rows] == [(first, "2020/beach.jpg")]
    assert kvb_json("find", "*", "--path", str(photos / "nope"), "--repo", location,
                    cache=cache) == []  # fmt: skip


def test_find_newest_and_oldest_bound_the_mtime(
    repo_with_two_hosts: tuple[str, Path, Path], cache: Path
) -> None:
    location, _, _ = repo_with_two_hosts
    rows = kvb_json("find", "*", "--newest", "2021-01-01", "--repo", location, cache=cache)
    assert {r["path"] for r in rows} == {"2020/beach.jpg"}
    rows = kvb_json(
        "find", "*.JPG", "--oldest", "2023-11-01", "--newest", "2023-11-30",
        "--snapshot", "latest", "--host", "laptop", "--repo", location, cache=cache,
    )  # fmt: skip
    assert rows == []  # latest is the server's snapshot: --snapshot wins, --host filters it
    rows = kvb_json("find", "*.JPG", "--oldest", "2023-11-01", "--newest", "2023-11-14",
                    "--repo", location, cache=cache)  # fmt: skip
    assert [r["path"] for r in rows] == ["Cat.JPG", "Cat.JPG"]


def test_find_chunk_names_the_files_holding_it_and_where_it_is_stored(
    repo_with_two_hosts: tuple[str, Path, Path], cache: Path
) -> None:
    location, _, _ = repo_with_two_hosts
    from kvtools import open_repo

    with open_repo(location) as repo:
        (loc,) = chunks_of(repo, "latest", "hosts")
    rows = kvb_json("find", "--chunk", loc.chunk_id.hex()[:12], "--repo", location, cache=cache)
    assert [r["path"] for r in rows] == ["hosts"]
    assert rows[0]["chunks"] == [
        {"id": loc.chunk_id.hex(), "pack": loc.pack_id.hex(), "offset": loc.offset,
         "length": loc.length}
    ]  # fmt: skip
    same = kvb_json("find", "--blob", loc.chunk_id.hex(), "--repo", location, cache=cache)
    assert same == rows
    text = kvb("find", "--blob", loc.chunk_id.hex(), "--repo", location, cache=cache).stdout
    assert f"chunk {loc.chunk_id.hex()} in pack {loc.pack_id.hex()}".encode() in text


def test_find_bad_input_is_a_usage_error(
    repo_with_two_hosts: tuple[str, Path, Path], cache: Path
) -> None:
    location, _, _ = repo_with_two_hosts
    done = kvb("find", "--repo", location, cache=cache, expect=2)
    assert b"give a PATTERN" in done.stderr
    done = kvb("find", "x", "--newest", "yesterday", "--repo", location, cache=cache, expect=2)
    assert b"is not a date" in done.stderr
    done = kvb("find", "--chunk", "xyz", "--repo", location, cache=cache, expect=2)
    assert b"not a chunk id (hexadecimal): 'xyz'" in done.stderr
