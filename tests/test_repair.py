"""kvbackup repair index and repair snapshots: rebuild, set aside, report; destroy nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import assert_same_tree
from kvtools import init_repo, kvb, kvb_json, open_repo, write_tree

from kvbackup.errors import ExitCode
from kvbackup.format.layout import snapshot_key


@pytest.fixture
def repo_with_backup(tmp_path: Path) -> tuple[str, Path, str, str]:
    repo_url = str(tmp_path / "repo")
    init_repo(repo_url).close()
    src = write_tree(tmp_path / "src", {"a.bin": os.urandom(120_000), "b.txt": b"b" * 5000})
    snap = kvb_json("backup", src, "-r", repo_url, cache=tmp_path / "c")["snapshot"]
    with open_repo(repo_url) as repo:
        group = repo.resolve_snapshot(snap).group
    return repo_url, src, snap, group


def test_repair_index_rebuilds_a_lost_index_fragment_from_pack_trailers(
    repo_with_backup: tuple[str, Path, str, str], tmp_path: Path
) -> None:
    repo_url, src, snap, group = repo_with_backup
    with open_repo(repo_url) as repo:
        for key in list(repo.core.raw_store.list(f"groups/{group}/index/")):
            repo.core.raw_store.delete(key)
    kvb("verify", "-r", repo_url, cache=tmp_path / "c", expect=ExitCode.CORRUPT)
    report = kvb_json("repair", "index", "-r", repo_url, cache=tmp_path / "c")
    (g,) = report["groups"]
    assert g["group"] == group and g["packs_indexed"] > 0 and g["new_fragment"]
    assert kvb_json("verify", "--no-cache", "-r", repo_url, cache=tmp_path / "c")["ok"]
    done = kvb("restore", snap, tmp_path / "out", "-r", repo_url, cache=tmp_path / "c")
    assert b"warning" not in done.stderr  # no fallback needed any more
    assert_same_tree(src, tmp_path / "out")


def test_repair_index_sets_a_damaged_fragment_aside_and_keeps_a_copy(
    repo_with_backup: tuple[str, Path, str, str], tmp_path: Path
) -> None:
    repo_url, src, snap, group = repo_with_backup
    with open_repo(repo_url) as repo:
        (key, *_) = sorted(repo.core.raw_store.list(f"groups/{group}/index/"))
        damaged = repo.core.raw_store.get(key)[:-1] + b"!"
        repo.core.raw_store.put(key, damaged)
    dry = kvb_json("repair", "index", "--dry-run", "-r", repo_url, cache=tmp_path / "c")
    assert dry["groups"][0]["set_aside"][0]["key"] == key
    with open_repo(repo_url) as repo:
        assert repo.core.raw_store.get(key) == damaged  # the dry run changed nothing
    kvb("repair", "index", "-r", repo_url, cache=tmp_path / "c")
    with open_repo(repo_url) as repo:
        assert key not in set(repo.core.raw_store.list("groups/"))
        assert repo.core.raw_store.get(f"quarantine/{key}") == damaged
    assert kvb_json("verify", "--no-cache", "-r", repo_url, cache=tmp_path / "c")["ok"]
    kvb("restore", snap, tmp_path / "out", "-r", repo_url, cache=tmp_path / "c")
    assert_same_tree(src, tmp_path / "out")


def test_repair_index_on_a_sound_repository_changes_nothing(
    repo_with_backup: tuple[str, Path, str, str], tmp_path: Path
) -> None:
    repo_url, *_ = repo_with_backup
    before = sorted(p.relative_to(repo_url) for p in Path(repo_url).rglob("*"))
    done = kvb("repair", "index", "-r", repo_url, cache=tmp_path / "c")
    assert b"nothing to repair" in done.stdout
    assert sorted(p.relative_to(repo_url) for p in Path(repo_url).rglob("*")) == before


def test_repair_snapshots_sets_aside_unreadable_records_and_names_them(
    repo_with_backup: tuple[str, Path, str, str], tmp_path: Path
) -> None:
    repo_url, src, snap, _group = repo_with_backup
    (src / "c.txt").write_bytes(b"more")
    second = kvb_json("backup", src, "-r", repo_url, cache=tmp_path / "c")["snapshot"]
    key = snapshot_key(snap, final=True)
    with open_repo(repo_url) as repo:
        damaged = b"garbage" + repo.core.raw_store.get(key)[7:]
        repo.core.raw_store.put(key, damaged)
    done = kvb("repair", "snapshots", "-r", repo_url, cache=tmp_path / "c")
    assert key.encode() in done.stdout
    with open_repo(repo_url) as repo:
        assert repo.core.raw_store.get(f"quarantine/{key}") == damaged
        states = {s.id: s.state for s in repo.snapshots()}
        assert not repo.damage  # nothing unreadable is left to work around
    assert states == {snap: "incomplete", second: "complete"}
    done = kvb("snapshots", "-r", repo_url, cache=tmp_path / "c")
    assert b"warning" not in done.stderr
    kvb("restore", second, tmp_path / "out", "-r", repo_url, cache=tmp_path / "c")
    assert_same_tree(src, tmp_path / "out")
