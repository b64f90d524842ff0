"""Snapshot ids: unique without conditional writes, ordered by time, old ids still read."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from helpers import assert_same_tree

from kvbackup import Repository
from kvbackup.format.layout import is_snapshot_id, snapshot_sort_key
from kvbackup.store import MappingStore


class RacyStore(MappingStore):
    """A store with no atomic conditional write (check, then put), whose check-then-put
    window is held open until ``writers`` callers are inside it: what two backups that
    start in the same second do on rclone or an fsspec store."""

    supports_put_if_absent = False

    def __init__(self, writers: int):
        super().__init__({})
        self.barrier = threading.Barrier(writers, timeout=10)
        self.racing = True

    def put_if_absent(self, key: str, value: bytes) -> bool:
        if not self.exists(key):
            if self.racing:
                self.barrier.wait()
            self.put(key, value)
            return True
        return False


def test_concurrent_backups_in_one_second_get_distinct_snapshots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RacyStore(writers=2)
    Repository.init(store, encryption="none")
    monkeypatch.setattr("kvbackup.ops.backup.time.time", lambda: 1_800_000_000.0)
    sources = []
    for n in range(2):
        src = tmp_path / f"src{n}"
        src.mkdir()
        (src / "who.txt").write_text(f"source {n}\n" * (n + 1))
        sources.append(src)
    results: dict[int, str] = {}

    def run(n: int) -> None:
        repo = Repository.open(store)
        results[n] = repo.backup(str(sources[n])).snapshot.id

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.racing = False
    assert len(set(results.values())) == 2
    repo = Repository.open(store)
    assert len([s for s in repo.snapshots() if s.complete]) == 2
    for n, snap_id in results.items():
        repo.restore(snap_id, tmp_path / f"out{n}")
        assert_same_tree(tmp_path / f"out{n}", sources[n])


def test_ids_made_in_one_second_sort_in_the_order_they_were_made() -> None:
    from kvbackup.format.snapshots import new_snapshot_id

    ids = [new_snapshot_id(1_800_000_000 + n / 1000) for n in range(12)]
    assert all(is_snapshot_id(i) for i in ids)
    assert sorted(ids, key=snapshot_sort_key) == ids
    assert len(set(ids)) == 12


def test_old_suffixed_ids_sort_by_number_not_as_text() -> None:
    old = ["20260101T000000Z", *[f"20260101T000000Z-{n}" for n in range(2, 12)]]
    assert sorted(reversed(old), key=snapshot_sort_key) == old


def test_old_and_new_ids_sort_by_time() -> None:
    ids = ["20260101T000000Z-10", "20260101T000001.000001Z-0a1b2c3d", "20260101T000002Z"]
    assert sorted(reversed(ids), key=snapshot_sort_key) == ids


def test_latest_is_the_last_of_ten_backups_in_one_second(monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Repository.init({}, encryption="none")
    ticks = iter(1_800_000_000 + n / 100 for n in range(1000))
    monkeypatch.setattr("kvbackup.ops.backup.time.time", lambda: next(ticks))
    made = [repo.backup([("n.txt", str(n).encode())]).snapshot.id for n in range(11)]
    assert [s.id for s in repo.snapshots()] == made
    assert repo.resolve_snapshot("latest").id == made[-1]


def test_snapshots_with_ids_of_earlier_versions_stay_readable_and_ordered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_ids = iter(["20260101T000000Z", *[f"20260101T000000Z-{n}" for n in range(2, 12)]])
    monkeypatch.setattr("kvbackup.ops.backup.new_snapshot_id", lambda t: next(old_ids))
    repo = Repository.init({}, encryption="none")
    made = [repo.backup([("n.txt", str(n).encode())]).snapshot.id for n in range(11)]
    monkeypatch.undo()
    newer = repo.backup([("n.txt", b"new")]).snapshot.id
    assert [s.id for s in repo.snapshots()] == [*made, newer]
    assert repo.resolve_snapshot("latest").id == newer
    repo.restore("20260101T000000Z-10", tmp_path / "out")
    assert (tmp_path / "out" / "n.txt").read_bytes() == b"9"


def test_snapshots_named_on_the_command_line_are_ordered_by_time_not_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kvbackup.cli.selection import select_snapshots
    from kvbackup.core.selection import SnapshotFilter

    old_ids = iter(["20260101T000000Z", *[f"20260101T000000Z-{n}" for n in range(2, 12)]])
    monkeypatch.setattr("kvbackup.ops.backup.new_snapshot_id", lambda t: next(old_ids))
    repo = Repository.init({}, encryption="none")
    made = [repo.backup([("n.txt", str(n).encode())]).snapshot.id for n in range(11)]
    chosen = select_snapshots(repo, tuple(reversed(made)), SnapshotFilter())
    assert [s.id for s in chosen] == made


def test_a_forgotten_snapshots_id_is_never_handed_out_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forget deletes both records of a snapshot; a backup started in the same second must
    not get the freed id (ids once taken by checking which were free did, and two
    concurrent backups then reported the same id)."""
    repo = Repository.init({}, encryption="none")
    monkeypatch.setattr("kvbackup.ops.backup.time.time", lambda: 1_800_000_000.0)
    handed_out = []
    for n in range(20):
        snap = repo.backup([("n.txt", str(n).encode())]).snapshot
        handed_out.append(snap.id)
        repo.forget(snapshots=[snap.id])
        assert not list(repo.core.store.list("snapshots/"))  # both records gone
    assert len(set(handed_out)) == len(handed_out)
    kept = repo.backup([("n.txt", b"kept")]).snapshot.id
    assert kept not in handed_out
    repo.restore("latest", tmp_path / "out")
    assert (tmp_path / "out" / "n.txt").read_bytes() == b"kept"
