"""Damage found by verify is recorded in the repository and healed by the next backup;
verify's record belongs to one location; verify checks what restore checks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import assert_same_tree
from kvtools import chunks_of, flip_byte, init_repo, kvb, kvb_json, open_repo, write_tree

from kvbackup.errors import ExitCode
from kvbackup.format.layout import damage_prefix as damage_record_prefix
from kvbackup.format.layout import pack_key


@pytest.fixture
def backed_up(tmp_path: Path) -> tuple[str, Path, str]:
    repo_url = str(tmp_path / "repo")
    init_repo(repo_url).close()
    src = write_tree(tmp_path / "src", {"a.bin": os.urandom(40_000), "b.txt": b"bravo\n" * 2000})
    snap = kvb_json("backup", src, "-r", repo_url, cache=tmp_path / "c")["snapshot"]
    return repo_url, src, snap


@pytest.mark.parametrize("how", [[], ["--rehash"]])
def test_a_backup_after_verify_found_damage_stores_the_chunk_again(
    backed_up: tuple[str, Path, str], tmp_path: Path, how: list[str]
) -> None:
    repo_url, src, snap = backed_up
    with open_repo(repo_url) as repo:
        loc = chunks_of(repo, snap, "a.bin")[0]
        group = repo.resolve_snapshot(snap).group
        flip_byte(repo, group, loc)
    kvb("verify", "-r", repo_url, cache=tmp_path / "c", expect=ExitCode.CORRUPT)
    with open_repo(repo_url) as repo:
        assert list(repo.core.raw_store.list(damage_record_prefix(group)))  # in the repository
    shutil.rmtree(tmp_path / "c")  # not only in a local cache
    healed = kvb_json("backup", src, *how, "-r", repo_url, cache=tmp_path / "c")["snapshot"]
    kvb("restore", healed, tmp_path / "out", "-r", repo_url, cache=tmp_path / "c")
    assert_same_tree(src, tmp_path / "out")
    report = kvb_json("verify", "--no-cache", "-r", repo_url, cache=tmp_path / "c")
    assert report["ok"] is True
    assert any(loc.chunk_id.hex() in w for w in report["warnings"])  # the old copy, avoided


def test_the_old_snapshot_restores_again_after_healing(
    backed_up: tuple[str, Path, str], tmp_path: Path
) -> None:
    repo_url, src, snap = backed_up
    with open_repo(repo_url) as repo:
        loc = chunks_of(repo, snap, "a.bin")[0]
        flip_byte(repo, repo.resolve_snapshot(snap).group, loc)
    kvb("verify", "-r", repo_url, cache=tmp_path / "c", expect=ExitCode.CORRUPT)
    kvb("backup", src, "-r", repo_url, cache=tmp_path / "c")
    kvb("restore", snap, tmp_path / "out", "-r", repo_url, cache=tmp_path / "c")
    assert_same_tree(src, tmp_path / "out")


def test_a_copy_of_a_verified_repository_is_verified_anew(
    backed_up: tuple[str, Path, str], tmp_path: Path
) -> None:
    repo_url, _src, snap = backed_up
    kvb("verify", "-r", repo_url, cache=tmp_path / "c")
    copy = tmp_path / "mirror"
    shutil.copytree(repo_url, copy)
    with open_repo(str(copy)) as repo:
        loc = chunks_of(repo, snap, "b.txt")[0]
        flip_byte(repo, repo.resolve_snapshot(snap).group, loc)
    report = kvb_json("verify", "-r", copy, cache=tmp_path / "c", expect=ExitCode.CORRUPT)
    assert loc.chunk_id.hex() in report["damaged_chunks"]


def test_a_verified_pack_truncated_later_fails_the_default_verify(
    backed_up: tuple[str, Path, str], tmp_path: Path
) -> None:
    repo_url, _src, snap = backed_up
    kvb("verify", "-r", repo_url, cache=tmp_path / "c")
    with open_repo(repo_url) as repo:
        loc = chunks_of(repo, snap, "a.bin")[-1]
        key = pack_key(repo.resolve_snapshot(snap).group, loc.pack_id)
        repo.core.raw_store.put(key, repo.core.raw_store.get(key)[:1000])
    report = kvb_json("verify", "-r", repo_url, cache=tmp_path / "c", expect=ExitCode.CORRUPT)
    assert {"pack-size", "damaged-chunk"} & {p["kind"] for p in report["problems"]}


def test_stale_temporary_objects_are_listed_by_verify_and_counted_by_stats(
    backed_up: tuple[str, Path, str], tmp_path: Path
) -> None:
    repo_url, _src, snap = backed_up
    with open_repo(repo_url) as repo:
        group = repo.resolve_snapshot(snap).group
    stale = Path(repo_url) / "groups" / group / "packs" / ".tmp-4242-0123456789ab"
    stale.write_bytes(b"x" * 3000)
    report = kvb_json("verify", "-r", repo_url, cache=tmp_path / "c")
    assert report["ok"] is True
    assert [(t["name"], t["size"]) for t in report["temporary"]] == [
        (f"groups/{group}/packs/{stale.name}", 3000)
    ]
    stats = kvb_json("stats", "-r", repo_url, cache=tmp_path / "c")
    assert (stats["temporary_objects"], stats["temporary_bytes"]) == (1, 3000)
