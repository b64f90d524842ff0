"""The local metadata cache and merged index fragments: what commands cost as history
grows, asserted from the repository's request accounting."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from kvtools import PASSWORD, init_repo, kvb, kvb_json, write_tree
from lifecycle_tools import check_kept

from kvbackup.core.consolidate import MERGE_AT
from kvbackup.format.envelope import ObjectType
from kvbackup.format.index import decode_fragment
from kvbackup.repository import Repository


def reopen(url: str, cache: Path | bool) -> Repository:
    return Repository.open(url, password=PASSWORD, cache=cache)


def test_the_hundredth_backup_of_an_unchanged_tree_reads_almost_nothing(tmp_path: Path) -> None:
    url, cache = str(tmp_path / "repo"), tmp_path / "cache"
    init_repo(url).close()
    src = write_tree(
        tmp_path / "src", {f"d{i}/f{j}": b"%d" % (i * j) for i in range(5) for j in range(20)}
    )
    repo = reopen(url, cache)
    for _ in range(99):
        repo.backup(src)
    repo.close()
    repo = reopen(url, cache)  # a new process would start like this: warm cache on disk
    result = repo.backup(src)
    repo.close()
    assert result.stats.files_unchanged == 100
    assert result.requests["get"] <= 3, result.requests
    assert result.requests["list"] <= 3, result.requests
    # Without the cache the same backup reads every record: the cache is what saves it.
    repo = reopen(url, False)
    cold = repo.backup(src)
    repo.close()
    assert cold.requests["get"] >= 100


def test_snapshots_reads_no_record_with_a_warm_cache_and_a_cold_one_is_rebuilt(
    tmp_path: Path,
) -> None:
    url, cache = str(tmp_path / "repo"), tmp_path / "cache"
    init_repo(url).close()
    src = write_tree(tmp_path / "src", {"f": b"x"})
    repo = reopen(url, cache)
    ids = [repo.backup(src).snapshot.id for _ in range(5)]
    repo.close()
    reopen(url, cache).snapshots()  # the last record is read (and cached) once
    repo = reopen(url, cache)
    assert [s.id for s in repo.snapshots()] == ids
    assert repo.core.counts.get == 0 and repo.core.counts.list == 1
    repo.close()
    shutil.rmtree(cache)  # safe at any time
    repo = reopen(url, cache)
    assert [s.id for s in repo.snapshots()] == ids
    assert repo.core.counts.get == 5  # one record each, read again
    repo.close()


def test_restore_latest_reads_only_the_record_it_restores(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    init_repo(url).close()
    src = write_tree(tmp_path / "src", {"f": b"x" * 100})
    repo = reopen(url, False)
    for _ in range(6):
        repo.backup(src)
    repo.close()
    repo = reopen(url, False)  # no cache at all
    latest = repo.resolve_snapshot("latest")
    assert repo.core.counts.get == 1 and repo.core.counts.list == 1
    repo.restore(latest, tmp_path / "out")
    repo.close()
    assert (tmp_path / "out" / "f").read_bytes() == b"x" * 100


def test_a_damaged_cache_entry_is_read_again_from_the_store(tmp_path: Path) -> None:
    url, cache = str(tmp_path / "repo"), tmp_path / "cache"
    init_repo(url).close()
    src = write_tree(tmp_path / "src", {"f": b"x"})
    repo = reopen(url, cache)
    snap = repo.backup(src).snapshot
    repo.close()
    repo = reopen(url, cache)
    list(repo.core.iter_entries(repo.resolve_snapshot(snap.id)))  # warms the cache
    repo.close()
    cached = next((cache / "repos").glob(f"*/objects/snapshots/{snap.id}"))
    cached.write_bytes(cached.read_bytes()[:-3] + b"bad")
    for chunk in (cache / "repos").glob("*/chunks/*/*"):
        chunk.write_bytes(b"garbage")
    repo = reopen(url, cache)
    assert repo.resolve_snapshot(snap.id).filelist == snap.filelist
    assert [e.path for e in repo.core.iter_entries(snap)] == [b"f"]
    repo.close()


def test_cli_no_cache_reads_from_the_store(tmp_path: Path) -> None:
    url, cache = str(tmp_path / "repo"), tmp_path / "cache"
    init_repo(url).close()
    src = write_tree(tmp_path / "src", {"f": b"x"})
    for _ in range(3):
        kvb("backup", "-r", url, src, "-q", cache=cache)
    assert list((cache / "repos").glob("*/objects/snapshots/*"))
    stats = kvb_json("verify", "-r", url, "--no-cache", cache=tmp_path / "c2")
    assert stats["ok"]
    assert not (tmp_path / "c2" / "repos").exists()


def test_prune_merges_fragments_and_readers_tolerate_a_fragment_vanishing(
    tmp_path: Path,
) -> None:
    url = str(tmp_path / "repo")
    repo = init_repo(url)
    src = tmp_path / "src"
    for n in range(6):
        write_tree(src, {f"f{n}": bytes([n]) * 5000})
        group = repo.backup(src).snapshot.group
    keys = sorted(repo.core.store.list(f"groups/{group}/index/"))
    assert len(keys) == 6
    # A reader that listed the fragments just before a merge replaced them still finds
    # every pack (the vanished fragment is skipped, the listing read again).
    merged = [
        p for k in keys for p in decode_fragment(repo.core.get_object(k, ObjectType.INDEX), k)
    ]
    listing = repo.core.store.list
    calls = []

    def list_then_merge(prefix: str = ""):  # type: ignore[no-untyped-def]
        found = list(listing(prefix))
        if prefix.rstrip("/").endswith("/index") and not calls:  # the index listing
            calls.append(prefix)
            repo.core.write_index_fragment(group, merged)
            for k in keys:
                repo.core.store.delete(k)
        return iter(found)

    repo.core.store.list = list_then_merge  # type: ignore[method-assign]
    index, _ = repo.core.load_index(group)
    repo.core.store.list = listing  # type: ignore[method-assign]
    assert index.packs == {p for p, _ in merged}
    repo.close()
    out = kvb_json("prune", "-r", url, cache=tmp_path / "c")
    assert out["fragments_written"] == 0  # already a single fragment after the merge above
    assert (
        len(list(Repository.open(url, password=PASSWORD).core.store.list(f"groups/{group}/index/")))
        == 1
    )


def test_a_backup_merges_the_fragments_of_a_group_that_has_many(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    repo = init_repo(url)
    src = tmp_path / "src"
    for n in range(MERGE_AT + 1):
        write_tree(src, {"changing": b"%d" % n})
        result = repo.backup(src)
    group = result.snapshot.group
    assert any("merged" in m for m in result.messages)
    keys = list(repo.core.store.list(f"groups/{group}/index/"))
    assert len(keys) <= 2  # the merged one, and this backup's own
    repo.close()
    check_kept(url, {result.snapshot.id: src}, tmp_path)


@pytest.mark.parametrize("scheme", ["", "fsspec::file://"])
def test_prune_removes_stale_temporary_files_only(tmp_path: Path, scheme: str) -> None:
    """Both stores that write through ``.tmp-*`` files (the local one, fsspec on a local
    filesystem): prune removes what verify lists, once it is older than a day."""
    url = scheme + str(tmp_path / "repo")
    init_repo(url).close()
    old = tmp_path / "repo" / "snapshots" / ".tmp-interrupted"
    old.parent.mkdir(exist_ok=True)
    old.write_bytes(b"x" * 100)
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    fresh = tmp_path / "repo" / "snapshots" / ".tmp-in-progress"
    fresh.write_bytes(b"y")
    out = kvb_json("prune", "-r", url, cache=tmp_path / "c")
    assert out["temporaries_deleted"] == 1
    assert not old.exists() and fresh.exists()
