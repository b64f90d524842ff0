"""One damaged snapshot record or index fragment is reported and worked around: every
command goes on with the rest (``snapshots``, ``restore`` of other ids, ``stats``,
``backup``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import assert_same_tree
from kvtools import init_repo, kvb, kvb_json, open_repo, write_tree

from kvbackup.errors import ExitCode
from kvbackup.format.layout import snapshot_key


@pytest.fixture
def two_snapshots(tmp_path: Path) -> tuple[str, Path, list[str]]:
    repo_url = str(tmp_path / "repo")
    init_repo(repo_url).close()
    src = write_tree(tmp_path / "src", {"a.txt": b"alpha" * 3000, "d/b.bin": os.urandom(90_000)})
    ids = [kvb_json("backup", src, "-r", repo_url, cache=tmp_path / "c")["snapshot"]]
    (src / "c.txt").write_bytes(b"gamma" * 500)
    ids.append(kvb_json("backup", src, "-r", repo_url, cache=tmp_path / "c")["snapshot"])
    return repo_url, src, ids


def _damage_record(repo_url: str, snapshot_id: str) -> None:
    repo = open_repo(repo_url)
    key = snapshot_key(snapshot_id, final=True)
    data = bytearray(repo.core.raw_store.get(key))
    data[len(data) // 2] ^= 0xFF
    repo.core.raw_store.put(key, bytes(data))
    repo.close()


def test_a_damaged_snapshot_record_is_reported_and_the_rest_listed(
    two_snapshots: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    repo_url, _src, ids = two_snapshots
    _damage_record(repo_url, ids[0])
    # --no-cache: a copy cached before the damage would (rightly) still be served
    # the rest is listed, the damage warned about, and the exit code says the list is not
    # whole (a script must not read it as a clean repository)
    done = kvb("snapshots", "-r", repo_url, "--json", "--no-cache", cache=tmp_path / "c",
               expect=ExitCode.CORRUPT)  # fmt: skip
    import json

    listed = {s["id"]: s["state"] for s in json.loads(done.stdout)}
    # the damaged final record falls back to its .open record: an incomplete snapshot
    assert listed == {ids[0]: "incomplete", ids[1]: "complete"}
    assert snapshot_key(ids[0], True) in done.stderr.decode()


def test_restore_stats_and_backup_go_on_around_a_damaged_snapshot_record(
    two_snapshots: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    repo_url, src, ids = two_snapshots
    _damage_record(repo_url, ids[0])
    kvb("restore", ids[1], tmp_path / "out", "-r", repo_url, cache=tmp_path / "c")
    assert_same_tree(src, tmp_path / "out")
    stats = kvb_json("stats", "-r", repo_url, cache=tmp_path / "c")
    assert stats["snapshots"] == 2
    (src / "new.txt").write_bytes(b"new")
    third = kvb_json("backup", src, "-r", repo_url, cache=tmp_path / "c")["snapshot"]
    kvb("restore", third, tmp_path / "out3", "-r", repo_url, cache=tmp_path / "c")
    assert_same_tree(src, tmp_path / "out3")


def test_a_stray_record_under_another_id_does_not_stop_snapshots(
    two_snapshots: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    repo_url, _src, ids = two_snapshots
    repo = open_repo(repo_url)
    stray = "20200101T000000Z"
    repo.core.raw_store.put(
        snapshot_key(stray, True), repo.core.raw_store.get(snapshot_key(ids[1], True))
    )
    repo.close()
    # --no-cache: a copy cached before the damage would (rightly) still be served
    done = kvb("snapshots", "-r", repo_url, "--json", "--no-cache", cache=tmp_path / "c",
               expect=ExitCode.CORRUPT)  # fmt: skip
    import json

    assert [s["id"] for s in json.loads(done.stdout)] == ids
    assert stray in done.stderr.decode()


def test_a_lost_index_fragment_still_restores_everything_from_pack_trailers(
    two_snapshots: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    repo_url, src, ids = two_snapshots
    repo = open_repo(repo_url)
    group = repo.resolve_snapshot(ids[1]).group
    fragments = sorted(repo.core.raw_store.list(f"groups/{group}/index/"))
    for key in fragments:
        repo.core.raw_store.delete(key)
    repo.close()
    done = kvb("restore", ids[1], tmp_path / "out", "-r", repo_url, cache=tmp_path / "c")
    assert_same_tree(src, tmp_path / "out")
    assert "repair index" in done.stderr.decode()
    (src / "later.txt").write_bytes(b"later")
    later = kvb_json("backup", src, "-r", repo_url, cache=tmp_path / "c")["snapshot"]
    kvb("restore", later, tmp_path / "out2", "-r", repo_url, cache=tmp_path / "c")
    assert_same_tree(src, tmp_path / "out2")


def test_a_damaged_index_fragment_is_reported_and_worked_around(
    two_snapshots: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    repo_url, src, ids = two_snapshots
    repo = open_repo(repo_url)
    group = repo.resolve_snapshot(ids[1]).group
    for key in repo.core.raw_store.list(f"groups/{group}/index/"):
        repo.core.raw_store.put(key, repo.core.raw_store.get(key)[:-3] + b"xyz")
    repo.close()
    done = kvb("restore", ids[1], tmp_path / "out", "-r", repo_url, cache=tmp_path / "c")
    assert_same_tree(src, tmp_path / "out")
    assert "index" in done.stderr.decode()
    stats = kvb_json("stats", "-r", repo_url, cache=tmp_path / "c")
    assert stats["snapshots"] == 2


def test_a_store_failing_on_a_record_is_an_error_not_a_damaged_record() -> None:
    from kvbackup import Repository
    from kvbackup.errors import StoreError, TransientStoreError
    from kvbackup.store import MappingStore, RetryPolicy

    class Failing(MappingStore):
        failing = False

        def get(self, key: str) -> bytes:
            if self.failing and key.startswith("snapshots/"):
                raise TransientStoreError("503 from the server")
            return super().get(key)

    store = Failing({})
    repo = Repository.init(store, encryption="none")
    repo.backup([("a.txt", b"a")])
    store.failing = True
    repo.core.store.inner.policy = RetryPolicy(attempts=2, base_delay=0.0)  # type: ignore[attr-defined]
    with pytest.raises(StoreError):
        repo.snapshots()
    assert not repo.damage
