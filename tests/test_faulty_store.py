"""FaultyStore (the ``kvbackup_faulty_store`` fixture): faults fire on the schedule a test
sets, and kvbackup answers each kind of fault the way its contract says."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kvbackup import Repository
from kvbackup.errors import (
    CorruptionError,
    KeyNotFoundError,
    RepositoryNotFoundError,
    StoreError,
    TransientStoreError,
)
from kvbackup.store import RetryingStore, RetryPolicy
from kvbackup.testkit import PASSWORD, FaultyStore, SourceTree
from kvbackup.testkit.faultystore import FiredFault

FAST_RETRIES = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.002)
MakeFaulty = Callable[..., FaultyStore]


def test_a_rule_lets_after_requests_through_then_fires_times_times(
    kvbackup_faulty_store: MakeFaulty,
) -> None:
    store = kvbackup_faulty_store()
    store.fail("put", "packs/*", after=2, times=1, error="permanent")
    store.put("packs/a", b"1")
    store.put("index/x", b"not matched")
    store.put("packs/b", b"2")
    with pytest.raises(StoreError, match="injected permanent error: put packs/c"):
        store.put("packs/c", b"3")
    store.put("packs/d", b"4")
    assert store.fired == [FiredFault("permanent", "put", "packs/c")]
    assert sorted(store.list("packs/")) == ["packs/a", "packs/b", "packs/d"]


def test_operation_groups_match_every_operation_they_name(
    kvbackup_faulty_store: MakeFaulty,
) -> None:
    store = kvbackup_faulty_store({"k": b"value"})
    store.fail("read", error="missing")
    for read in (lambda: store.get("k"), lambda: store.get_range("k", 0, 1)):
        with pytest.raises(KeyNotFoundError):
            read()
    assert store.exists("k") is False
    assert [f.op for f in store.fired] == ["get", "get_range", "exists"]
    store.put("k2", b"writes are not reads")


def test_throttling_is_transient_and_retried_until_it_stops(
    kvbackup_faulty_store: MakeFaulty,
) -> None:
    store = kvbackup_faulty_store({"k": b"value"})
    store.throttle("get", times=2)
    with pytest.raises(TransientStoreError, match="SlowDown"):
        store.get("k")
    assert RetryingStore(store, FAST_RETRIES).get("k") == b"value"
    assert store.counts == {"throttle": 2}


def test_a_persistent_transient_error_ends_as_store_error_after_the_retries(
    kvbackup_faulty_store: MakeFaulty,
) -> None:
    store = kvbackup_faulty_store()
    store.fail("put", error="transient")
    with pytest.raises(StoreError, match="failed after 4 attempts") as info:
        RetryingStore(store, FAST_RETRIES).put("k", b"v")
    assert not isinstance(info.value, TransientStoreError)
    assert store.counts == {"transient": 4}


def test_a_permanent_error_is_not_retried(kvbackup_faulty_store: MakeFaulty) -> None:
    store = kvbackup_faulty_store()
    store.fail("delete", error="permanent")
    with pytest.raises(StoreError, match="injected permanent error"):
        RetryingStore(store, FAST_RETRIES).delete("k")
    assert store.counts == {"permanent": 1}


def test_a_given_exception_is_raised_as_it_is(kvbackup_faulty_store: MakeFaulty) -> None:
    store = kvbackup_faulty_store()
    boom = StoreError("disk on fire")
    store.fail("list", error=boom)
    with pytest.raises(StoreError) as info:
        list(store.list("x/"))
    assert info.value is boom
    assert store.fired == [FiredFault("error", "list", "x/")]


def test_truncated_reads_return_the_leading_part_of_the_value(
    kvbackup_faulty_store: MakeFaulty,
) -> None:
    store = kvbackup_faulty_store({"k": b"0123456789"})
    store.truncate(times=2)
    assert store.get("k") == b"01234"
    assert store.get_range("k", 2, 6) == b"234"
    assert store.get("k") == b"0123456789"
    assert store.counts == {"truncate": 2}


def test_delay_holds_the_request(kvbackup_faulty_store: MakeFaulty) -> None:
    store = kvbackup_faulty_store({"k": b"v"})
    store.delay(0.2, "get", times=1)
    started = time.monotonic()
    assert store.get("k") == b"v"
    assert time.monotonic() - started >= 0.2
    assert store.fired == [FiredFault("delay", "get", "k")]


def test_clear_removes_the_rules_and_keeps_the_record(kvbackup_faulty_store: MakeFaulty) -> None:
    store = kvbackup_faulty_store()
    store.fail("put", error="permanent")
    with pytest.raises(StoreError):
        store.put("k", b"v")
    store.clear()
    store.put("k", b"v")
    assert store.get("k") == b"v"
    assert store.counts == {"permanent": 1}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.fail("push"), "unknown store operation 'push'"),
        (lambda s: s.fail(error="flaky"), "unknown error 'flaky'"),
        (lambda s: s.truncate("put"), "truncate applies to reads"),
        (lambda s: s.truncate(keep=1.0), "keep must be in"),
    ],
)
def test_a_schedule_with_a_typo_is_refused(
    kvbackup_faulty_store: MakeFaulty, call: Callable[[FaultyStore], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call(kvbackup_faulty_store())


# -- kvbackup against the faults ---------------------------------------------------------------


def test_backup_rides_out_throttling_and_restores_the_tree(
    kvbackup_repo: Repository,
    kvbackup_repo_url: str,
    kvbackup_faulty_store: MakeFaulty,
    kvbackup_tree: SourceTree,
    tmp_path: Path,
) -> None:
    store = kvbackup_faulty_store(kvbackup_repo_url)
    store.throttle("put", "groups/*", times=3)
    store.delay(0.01, "read", times=5)
    repo = Repository.open(store, password=PASSWORD)
    repo.backup(kvbackup_tree.path)
    repo.restore("latest", tmp_path / "out")
    kvbackup_tree.assert_restored(tmp_path / "out")
    assert store.counts == {"throttle": 3, "delay": 5}


def test_failed_backup_raises_store_error_and_keeps_the_earlier_snapshot(
    kvbackup_repo: Repository,
    kvbackup_repo_url: str,
    kvbackup_faulty_store: MakeFaulty,
    kvbackup_tree: SourceTree,
    tmp_path: Path,
) -> None:
    first = kvbackup_repo.backup(kvbackup_tree.path).snapshot
    (kvbackup_tree.path / "new.txt").write_text("written after the first backup")
    store = kvbackup_faulty_store(kvbackup_repo_url)
    store.fail("write", "groups/*/packs/*", error="permanent")
    with pytest.raises(StoreError, match="injected permanent error"):
        Repository.open(store, password=PASSWORD).backup(kvbackup_tree.path)
    assert store.counts["permanent"] >= 1  # puts run in parallel: maybe more
    reopened = Repository.open(kvbackup_repo_url, password=PASSWORD)
    assert [s.id for s in reopened.snapshots() if s.complete] == [first.id]
    reopened.restore(first.id, tmp_path / "out")
    assert not (tmp_path / "out" / "new.txt").exists()


def test_a_truncated_pack_read_is_corruption_not_wrong_bytes(
    kvbackup_repo: Repository,
    kvbackup_repo_url: str,
    kvbackup_faulty_store: MakeFaulty,
    kvbackup_tree: SourceTree,
    tmp_path: Path,
) -> None:
    kvbackup_repo.backup(kvbackup_tree.path)
    store = kvbackup_faulty_store(kvbackup_repo_url)
    store.truncate("read", "groups/*/packs/*")
    repo = Repository.open(store, password=PASSWORD)
    with pytest.raises(CorruptionError):
        b"".join(repo.cat("latest", "big.bin"))
    assert store.counts["truncate"] >= 1


def test_a_missing_config_is_no_repository(
    kvbackup_repo: Repository, kvbackup_repo_url: str, kvbackup_faulty_store: MakeFaulty
) -> None:
    store = kvbackup_faulty_store(kvbackup_repo_url)
    store.fail("get", "config", error="missing", times=1)
    with pytest.raises(RepositoryNotFoundError):
        Repository.open(store, password=PASSWORD)
    assert Repository.open(store, password=PASSWORD).config.id == kvbackup_repo.config.id
