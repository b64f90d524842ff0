"""kvbackup verify: structure and data checks, damage reports, the incremental record."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
from kvtools import (
    chunks_of,
    flip_byte,
    init_repo,
    kvb,
    kvb_json,
    open_repo,
    repo_location,
    write_tree,
)

from kvbackup.errors import ExitCode
from kvbackup.format.envelope import ObjectType
from kvbackup.format.layout import pack_key
from kvbackup.format.packs import PackBuilder

SHARED = os.urandom(5000)


@pytest.fixture(params=["local", "s3"])
def location(request: Any, tmp_path: Path, monkeypatch: Any) -> str:
    return repo_location(request.param, request, tmp_path, monkeypatch)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def two_snapshots(location: str, tmp_path: Path) -> tuple[Path, list[str]]:
    """A source backed up twice (a file added in between); the same content is in
    ``shared1.txt`` and ``sub/shared2.txt``, so one chunk serves both."""
    src = write_tree(
        tmp_path / "src",
        {
            "a.txt": b"alpha\n" * 100,
            "big.bin": os.urandom(150_000),
            "shared1.txt": SHARED,
            "sub/shared2.txt": SHARED,
        },
    )
    with init_repo(location) as repo:
        first = repo.backup(src).snapshot.id
        (src / "later.txt").write_bytes(b"added later")
        second = repo.backup(src).snapshot.id
    return src, [first, second]


def affected(report: dict[str, Any]) -> set[tuple[str, str | None]]:
    return {(a["snapshot"], a["path"]) for a in report["affected"]}


def test_an_intact_repository_verifies_clean_and_every_pack_is_read(
    location: str, tmp_path: Path, cache: Path
) -> None:
    two_snapshots(location, tmp_path)
    report = kvb_json("verify", "--repo", location, cache=cache)
    assert report["ok"] and report["problems"] == []
    assert report["snapshots"] == 2
    assert report["packs"] > 3 and report["packs_read"] == report["packs"]


def test_a_flipped_byte_names_the_chunk_and_every_snapshot_and_file_using_it(
    location: str, tmp_path: Path, cache: Path
) -> None:
    _, (first, second) = two_snapshots(location, tmp_path)
    with open_repo(location) as repo:
        (loc,) = chunks_of(repo, first, "shared1.txt")
        flip_byte(repo, repo.resolve_snapshot(first).group, loc)
    report = kvb_json("verify", "--repo", location, cache=cache, expect=ExitCode.CORRUPT)
    assert list(report["damaged_chunks"]) == [loc.chunk_id.hex()]
    assert affected(report) == {
        (first, "shared1.txt"),
        (first, "sub/shared2.txt"),
        (second, "shared1.txt"),
        (second, "sub/shared2.txt"),
    }
    text = kvb("verify", "--repo", location, cache=cache, expect=ExitCode.CORRUPT).stdout.decode()
    assert f"damaged chunk {loc.chunk_id.hex()}" in text
    assert f"snapshot {second}: sub/shared2.txt" in text


def test_a_deleted_pack_is_reported_with_every_file_it_spoils(
    location: str, tmp_path: Path, cache: Path
) -> None:
    _, (first, second) = two_snapshots(location, tmp_path)
    with open_repo(location) as repo:
        group = repo.resolve_snapshot(first).group
        locs = chunks_of(repo, first, "big.bin")
        repo.core.raw_store.delete(pack_key(group, locs[0].pack_id))
        in_pack = [loc.chunk_id for loc in locs if loc.pack_id == locs[0].pack_id]
    report = kvb_json("verify", "--repo", location, cache=cache, expect=ExitCode.CORRUPT)
    assert [p["kind"] for p in report["problems"]] == ["missing-pack"]
    assert {c.hex() for c in in_pack} <= set(report["damaged_chunks"])
    assert {(first, "big.bin"), (second, "big.bin")} <= affected(report)


def test_a_deleted_index_fragment_shows_as_chunks_not_indexed(
    location: str, tmp_path: Path, cache: Path
) -> None:
    _, (first, second) = two_snapshots(location, tmp_path)
    with open_repo(location) as repo:
        group = repo.resolve_snapshot(first).group
        (loc,) = chunks_of(repo, first, "a.txt")
        (fragment,) = [
            key
            for key in repo.core.raw_store.list(f"groups/{group}/index/")
            if loc.pack_id in dict(repo.core.read_index_fragment(key))
        ]
        repo.core.raw_store.delete(fragment)
    report = kvb_json("verify", "--repo", location, cache=cache, expect=ExitCode.CORRUPT)
    kinds = {p["kind"] for p in report["problems"]}
    assert "unindexed-chunk" in kinds
    assert loc.chunk_id.hex() in report["damaged_chunks"]
    assert "which no index fragment names" in report["damaged_chunks"][loc.chunk_id.hex()]
    spoiled = affected(report)
    assert (second, "a.txt") in spoiled
    assert (first, "a.txt") in spoiled or (first, None) in spoiled


def test_restore_of_a_damaged_snapshot_restores_the_rest_and_exits_nonzero(
    location: str, tmp_path: Path, cache: Path
) -> None:
    src, (first, _) = two_snapshots(location, tmp_path)
    with open_repo(location) as repo:
        locs = chunks_of(repo, first, "big.bin")
        flip_byte(repo, repo.resolve_snapshot(first).group, locs[len(locs) // 2])
    out = tmp_path / "out"
    done = kvb("restore", first, out, "--repo", location, cache=cache, expect=ExitCode.CORRUPT)
    assert "big.bin: not restored" in done.stderr.decode()
    assert not (out / "big.bin").exists()
    for name in ("a.txt", "shared1.txt", "sub/shared2.txt"):
        assert (out / name).read_bytes() == (src / name).read_bytes()


def test_verify_after_verify_reads_no_pack_again(tmp_path: Path, cache: Path) -> None:
    location = str(tmp_path / "repo")
    two_snapshots(location, tmp_path)
    first = kvb_json("verify", "--repo", location, cache=cache)
    again = kvb_json("verify", "--repo", location, cache=cache)
    assert first["packs_read"] == first["packs"] > 0
    assert again["packs_read"] == 0 and again["packs_fresh"] == first["packs"]
    assert again["bytes_checked"] == 0
    assert again["requests"]["bytes_read"] * 10 < first["requests"]["bytes_read"]


def test_after_a_new_backup_verify_reads_only_the_new_packs(tmp_path: Path) -> None:
    location = str(tmp_path / "repo")
    src, _ = two_snapshots(location, tmp_path)
    with open_repo(location) as repo:
        before = repo.verify(cache_dir=tmp_path / "cache")
        (src / "new.bin").write_bytes(os.urandom(60_000))
        result = repo.backup(src)
        again = repo.verify(cache_dir=tmp_path / "cache")
    assert again.ok
    assert again.packs == before.packs + result.stats.packs
    assert again.packs_read == result.stats.packs


def test_max_age_and_no_cache_read_every_pack_again(tmp_path: Path) -> None:
    location = str(tmp_path / "repo")
    two_snapshots(location, tmp_path)
    with open_repo(location) as repo:
        first = repo.verify(cache_dir=tmp_path / "cache")
        stale = repo.verify(cache_dir=tmp_path / "cache", max_age=0)
        uncached = repo.verify(cache_dir=tmp_path / "cache", use_cache=False)
    assert first.packs_read == stale.packs_read == uncached.packs_read == first.packs


def test_a_data_subset_reads_that_share_and_successive_runs_cover_every_pack(
    tmp_path: Path,
) -> None:
    location = str(tmp_path / "repo")
    two_snapshots(location, tmp_path)
    with open_repo(location) as repo:
        runs = [repo.verify(cache_dir=tmp_path / "cache", read_data_subset=25) for _ in range(4)]
    packs = runs[0].packs
    assert runs[0].packs_read == math.ceil(packs / 4)
    assert sum(r.packs_read for r in runs) == packs
    assert runs[-1].packs_fresh + runs[-1].packs_read == packs


def test_a_subset_still_finds_damage_in_a_pack_it_reads(tmp_path: Path, cache: Path) -> None:
    location = str(tmp_path / "repo")
    _, (first, _) = two_snapshots(location, tmp_path)
    with open_repo(location) as repo:
        (loc,) = chunks_of(repo, first, "a.txt")
        flip_byte(repo, repo.resolve_snapshot(first).group, loc)
        results = [repo.verify(cache_dir=cache, read_data_subset=50) for _ in range(2)]
    assert any(loc.chunk_id.hex() in r.damaged_chunks for r in results)


def test_damage_found_once_is_found_again_next_run(tmp_path: Path, cache: Path) -> None:
    location = str(tmp_path / "repo")
    _, (first, _) = two_snapshots(location, tmp_path)
    with open_repo(location) as repo:
        (loc,) = chunks_of(repo, first, "a.txt")
        flip_byte(repo, repo.resolve_snapshot(first).group, loc)
        runs = [repo.verify(cache_dir=cache) for _ in range(2)]
    assert all(loc.chunk_id.hex() in r.damaged_chunks for r in runs)


def test_a_pack_no_index_names_is_a_warning_not_damage(tmp_path: Path) -> None:
    location = str(tmp_path / "repo")
    _, (first, _) = two_snapshots(location, tmp_path)
    with open_repo(location) as repo:
        group = repo.resolve_snapshot(first).group
        builder = PackBuilder()
        data = b"left by a backup killed before it wrote its index"
        cid = repo.core.hasher(data)
        blob = repo.core.codec.encode(ObjectType.DATA, cid, data)
        builder.add(cid, ObjectType.DATA, blob, len(data))
        key = pack_key(group, builder.pack_id)
        repo.core.raw_store.put(key, builder.seal(repo.core.codec, key))
        result = repo.verify(cache_dir=tmp_path / "cache")
    assert result.ok
    assert any(key in w and "orphan" in w for w in result.warnings)


def test_a_damaged_pack_trailer_is_a_problem(tmp_path: Path) -> None:
    location = str(tmp_path / "repo")
    _, (first, _) = two_snapshots(location, tmp_path)
    with open_repo(location) as repo:
        (loc,) = chunks_of(repo, first, "a.txt")
        key = pack_key(repo.resolve_snapshot(first).group, loc.pack_id)
        data = bytearray(repo.core.raw_store.get(key))
        data[-10] ^= 0x01  # inside the trailer envelope
        repo.core.raw_store.put(key, bytes(data))
        result = repo.verify(cache_dir=tmp_path / "cache")
    assert [(p.kind, p.key) for p in result.problems] == [("trailer", key)]
    assert result.damaged_chunks == {}


def test_a_damaged_snapshot_record_is_a_problem(tmp_path: Path) -> None:
    location = str(tmp_path / "repo")
    _, (first, _) = two_snapshots(location, tmp_path)
    with open_repo(location) as repo:
        key = f"snapshots/{first}"
        data = bytearray(repo.core.raw_store.get(key))
        data[-5] ^= 0x01
        repo.core.raw_store.put(key, bytes(data))
        result = repo.verify(cache_dir=tmp_path / "cache")
    assert [(p.kind, p.key) for p in result.problems] == [("snapshot", key)]
    # its .open record still stands, as an incomplete snapshot (what every command sees)
    assert result.snapshots == 2


def test_bad_max_age_or_subset_is_a_usage_error(tmp_path: Path, cache: Path) -> None:
    location = str(tmp_path / "repo")
    init_repo(location).close()
    kvb("verify", "--repo", location, "--max-age", "soon", cache=cache, expect=ExitCode.USAGE)
    kvb("verify", "--repo", location, "--read-data-subset", "150%", cache=cache, expect=2)


# ------------------------------------------------------------------ verify --full


def full_tree(root: Path) -> Path:
    src = write_tree(
        root,
        {"keep.txt": b"unchanged", "edit.txt": b"before", "gone.txt": b"bye", "d/x.bin": b"x"},
    )
    os.symlink("keep.txt", src / "link")
    (src / "keep.txt").chmod(0o640)
    return src


def test_verify_full_of_an_unchanged_source_finds_no_difference(
    tmp_path: Path, cache: Path
) -> None:
    location = str(tmp_path / "repo")
    src = full_tree(tmp_path / "src")
    init_repo(location).backup(src)
    done = kvb("verify", "--full", src, "--repo", location, cache=cache)
    assert "no differences" in done.stdout.decode()


def test_verify_full_reports_an_edited_a_deleted_and_an_added_file(
    tmp_path: Path, cache: Path
) -> None:
    location = str(tmp_path / "repo")
    src = full_tree(tmp_path / "src")
    snap = init_repo(location).backup(src).snapshot.id
    stat = (src / "edit.txt").stat()
    (src / "edit.txt").write_bytes(b"AFTER!")  # same size, other bytes, same mtime
    os.utime(src / "edit.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (src / "gone.txt").unlink()
    (src / "d" / "new.txt").write_bytes(b"new")
    report = kvb_json(
        "verify", "--full", snap, src, "--repo", location, cache=cache, expect=ExitCode.DIFFERENCES
    )
    found = {(d["path"], d["kind"]) for d in report["differences"]}
    assert {
        ("edit.txt", "content"),
        ("gone.txt", "only-in-snapshot"),
        ("d/new.txt", "only-in-source"),
    } <= found
    assert found - {("d", "mtime")} == {
        ("edit.txt", "content"),
        ("gone.txt", "only-in-snapshot"),
        ("d/new.txt", "only-in-source"),
    }
    text = kvb(
        "verify", "--full", src, "--repo", location, cache=cache, expect=ExitCode.DIFFERENCES
    ).stdout.decode()
    assert "content: edit.txt: bytes differ from offset 0" in text


def test_verify_full_reports_type_mode_mtime_and_symlink_target(tmp_path: Path) -> None:
    location = str(tmp_path / "repo")
    src = full_tree(tmp_path / "src")
    with init_repo(location) as repo:
        repo.backup(src)
        (src / "keep.txt").chmod(0o600)
        os.utime(src / "gone.txt", ns=(0, 1_000_000_000))
        (src / "link").unlink()
        os.symlink("elsewhere", src / "link")
        (src / "d" / "x.bin").unlink()
        (src / "d" / "x.bin").mkdir()
        result = repo.verify_full(src)
    kinds = {(d.path, d.kind) for d in result.differences}
    assert {
        ("keep.txt", "mode"),
        ("gone.txt", "mtime"),
        ("link", "target"),
        ("d/x.bin", "type"),
    } <= kinds
    assert not result.ok


def test_verify_full_of_a_damaged_snapshot_reports_the_damage(tmp_path: Path, cache: Path) -> None:
    location = str(tmp_path / "repo")
    src = full_tree(tmp_path / "src")
    with init_repo(location) as repo:
        snap = repo.backup(src).snapshot.id
        (loc,) = chunks_of(repo, snap, "edit.txt")
        flip_byte(repo, repo.resolve_snapshot(snap).group, loc)
    done = kvb("verify", "--full", src, "--repo", location, cache=cache, expect=ExitCode.CORRUPT)
    assert "damaged: edit.txt" in done.stdout.decode()


def test_verify_full_without_a_snapshot_of_that_source_is_an_error(
    tmp_path: Path, cache: Path
) -> None:
    location = str(tmp_path / "repo")
    init_repo(location).backup(full_tree(tmp_path / "src"))
    other = write_tree(tmp_path / "other", {"f": b"f"})
    done = kvb("verify", "--full", other, "--repo", location, cache=cache, expect=15)
    assert "no snapshot of" in done.stderr.decode()
