"""The backup engine on a plain dict store: what a backup stores, skips, reuses and restores."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from helpers import PASSWORD, assert_same_tree, make_tree

from kvbackup import Repository
from kvbackup.errors import (
    BadPasswordError,
    RepositoryExistsError,
    RepositoryNotFoundError,
    SnapshotNotFoundError,
    StoreError,
)
from kvbackup.format.snapshots import COMPLETE, INCOMPLETE
from kvbackup.store import MappingStore


@pytest.fixture
def store() -> dict[str, bytes]:
    return {}


@pytest.fixture
def repo(store: dict[str, bytes]) -> Repository:
    return Repository.init(store, password=PASSWORD)


def test_init_works_on_a_plain_dict(store: dict[str, bytes]) -> None:
    Repository.init(store, password=PASSWORD)
    assert "config" in store
    assert [k for k in store if k.startswith("keys/")]


def test_init_of_a_plain_dict_needs_no_password(tmp_path: Path) -> None:
    store: dict[str, bytes] = {}
    repo = Repository.init(store)
    assert repo.config.encryption is None
    repo.backup([("a.txt", b"alpha")])
    Repository.open(store).restore("latest", tmp_path / "out")
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"alpha"


def test_init_of_a_real_store_without_a_password_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadPasswordError):
        Repository.init(str(tmp_path / "repo"))


def test_init_refuses_an_existing_repository(store: dict[str, bytes], repo: Repository) -> None:
    with pytest.raises(RepositoryExistsError):
        Repository.init(store, password=PASSWORD)


def test_open_of_an_empty_store_says_there_is_no_repository() -> None:
    with pytest.raises(RepositoryNotFoundError):
        Repository.open({}, password=PASSWORD)


def test_open_with_a_wrong_password_fails(store: dict[str, bytes], repo: Repository) -> None:
    with pytest.raises(BadPasswordError):
        Repository.open(store, password="wrong")


def test_backup_and_restore_round_trip_a_real_tree(tmp_path: Path, repo: Repository) -> None:
    src = make_tree(tmp_path / "src")
    result = repo.backup(src)
    assert result.snapshot.state == COMPLETE
    assert not result.skipped
    out = tmp_path / "out"
    restored = repo.restore("latest", out)
    assert not restored.errors
    assert_same_tree(src, out)


def test_reopened_repository_restores_the_same_bytes(
    tmp_path: Path, store: dict[str, bytes], repo: Repository
) -> None:
    src = make_tree(tmp_path / "src")
    repo.backup(src)
    again = Repository.open(store, password=PASSWORD)
    again.restore("latest", tmp_path / "out")
    assert_same_tree(src, tmp_path / "out")


def test_incremental_backup_does_not_read_unchanged_files(tmp_path: Path, repo: Repository) -> None:
    src = make_tree(tmp_path / "src")
    first = repo.backup(src)
    (src / "docs" / "readme.txt").write_text("changed\n")
    second = repo.backup(src)
    assert second.snapshot.parent == first.snapshot.id
    assert second.snapshot.group == first.snapshot.group
    assert second.stats.files_read == 1
    assert second.stats.files_unchanged == first.stats.files - 1
    repo.restore(second.snapshot.id, tmp_path / "out")
    assert_same_tree(src, tmp_path / "out")


def test_rehash_reads_every_file_but_stores_nothing_new(tmp_path: Path, repo: Repository) -> None:
    src = make_tree(tmp_path / "src")
    first = repo.backup(src)
    second = repo.backup(src, rehash=True)
    assert second.stats.files_read == first.stats.files
    assert second.stats.bytes_new == 0


def test_full_backup_starts_a_new_group_and_uploads_everything(
    tmp_path: Path, repo: Repository
) -> None:
    src = make_tree(tmp_path / "src")
    first = repo.backup(src)
    full = repo.backup(src, full=True)
    assert full.snapshot.group != first.snapshot.group
    assert full.snapshot.full
    assert full.stats.bytes_new == first.stats.bytes_new
    after = repo.backup(src)
    assert after.snapshot.group == full.snapshot.group
    assert after.stats.bytes_new == 0


def test_identical_content_is_stored_once(tmp_path: Path, repo: Repository) -> None:
    src = tmp_path / "src"
    src.mkdir()
    blob = os.urandom(200_000)
    for i in range(5):
        (src / f"copy{i}").write_bytes(blob)
    result = repo.backup(src)
    assert result.stats.chunks_deduplicated >= 4
    assert result.stats.bytes_stored < 2 * len(blob)


def test_a_different_source_starts_its_own_group(tmp_path: Path, repo: Repository) -> None:
    a = make_tree(tmp_path / "a")
    b = make_tree(tmp_path / "b")
    assert repo.backup(a).snapshot.group != repo.backup(b).snapshot.group


def test_snapshot_ids_are_unique_within_one_second(tmp_path: Path, repo: Repository) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    ids = [repo.backup(src).snapshot.id for _ in range(3)]
    assert len(set(ids)) == 3
    assert all(i[:16] == ids[0][:16] or i[:15] != ids[0][:15] for i in ids)


def test_snapshots_lists_complete_snapshots_oldest_first(tmp_path: Path, repo: Repository) -> None:
    src = make_tree(tmp_path / "src")
    made = [repo.backup(src).snapshot.id for _ in range(2)]
    assert [s.id for s in repo.snapshots()] == made
    assert all(s.complete for s in repo.snapshots())


def test_resolve_snapshot_by_unique_prefix_and_latest(tmp_path: Path, repo: Repository) -> None:
    src = make_tree(tmp_path / "src")
    first = repo.backup(src).snapshot
    second = repo.backup(src).snapshot
    assert repo.resolve_snapshot("latest").id == second.id
    assert repo.resolve_snapshot(first.id).id == first.id
    with pytest.raises(SnapshotNotFoundError):
        repo.resolve_snapshot("19990101")
    with pytest.raises(SnapshotNotFoundError, match="matches 2"):
        repo.resolve_snapshot(first.id[:8])


def test_iterable_source_round_trips_bytes_and_file_objects(
    tmp_path: Path, repo: Repository
) -> None:
    items = [
        ("a.txt", b"alpha"),
        ("dir/b.bin", io.BytesIO(b"\x00" * 70_000)),
        (b"raw-\xff", b"bytes name"),
    ]
    repo.backup(items)
    out = tmp_path / "out"
    repo.restore("latest", out)
    assert (out / "a.txt").read_bytes() == b"alpha"
    assert (out / "dir" / "b.bin").read_bytes() == b"\x00" * 70_000
    assert (
        Path(
            os.path.join(os.fsencode(out), b"raw-\xff").decode("utf-8", "surrogateescape")
        ).read_bytes()
        == b"bytes name"
    )


def test_iterable_source_rejects_escaping_names(repo: Repository) -> None:
    from kvbackup.errors import SourceError

    with pytest.raises(SourceError):
        repo.backup([("../evil", b"x")])


def test_unreadable_file_is_skipped_and_recorded(tmp_path: Path, repo: Repository) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    src = make_tree(tmp_path / "src")
    (src / "private").chmod(0)
    result = repo.backup(src)
    assert result.partial
    assert [p for p, _ in result.skipped] == ["private"]
    assert result.snapshot.skipped[0]["path"] == "private"


class FailingAfter(MappingStore):
    """A dict store whose puts start failing for good after ``n`` of them."""

    def __init__(self, mapping: dict[str, bytes], n: int):
        super().__init__(mapping)
        self.left = n

    def put(self, key: str, value: bytes) -> None:
        if key.startswith("groups/") and "/packs/" in key:
            self.left -= 1
            if self.left < 0:
                raise StoreError("injected: disk full")
        super().put(key, value)


def test_interrupted_backup_leaves_incomplete_record_and_next_run_resumes(
    tmp_path: Path, store: dict[str, bytes], repo: Repository
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(12):
        (src / f"f{i:02d}").write_bytes(os.urandom(600_000))
    small = Repository.init({}, password=PASSWORD, pack_size=1 << 20)  # many small packs
    backing = small.core.raw_store.mapping  # type: ignore[attr-defined]
    failing = Repository.open(FailingAfter(backing, 3), password=PASSWORD)
    with pytest.raises(StoreError):
        failing.backup(src)
    (snap,) = small.snapshots()
    assert snap.state == INCOMPLETE
    again = Repository.open(backing, password=PASSWORD)
    result = again.backup(src)
    assert result.snapshot.resumes == snap.id
    assert result.stats.chunks_deduplicated >= 3
    assert result.stats.bytes_new < 12 * 600_000
    assert any("resumed" in m for m in result.messages)
    again.restore("latest", tmp_path / "out")
    assert_same_tree(src, tmp_path / "out")


def test_earlier_snapshots_survive_an_interrupted_backup(
    tmp_path: Path, store: dict[str, bytes], repo: Repository
) -> None:
    src = make_tree(tmp_path / "src")
    repo.backup(src)
    (src / "new.bin").write_bytes(os.urandom(2 << 20))
    failing = Repository.open(FailingAfter(store, 0), password=PASSWORD)
    with pytest.raises(StoreError):
        failing.backup(src)
    (src / "new.bin").unlink()
    first = next(s for s in repo.snapshots() if s.complete)
    repo.restore(first.id, tmp_path / "out")
    assert_same_tree(src, tmp_path / "out")


def test_progress_callback_is_told_about_the_backup(tmp_path: Path, repo: Repository) -> None:
    events = []
    repo.backup(make_tree(tmp_path / "src"), progress=events.append)
    assert events and events[-1].phase == "commit"
    assert events[-1].files > 0


def test_a_file_object_of_unknown_size_is_cut_and_stored_whole(
    tmp_path: Path, repo: Repository
) -> None:
    data = os.urandom(3 << 20)
    repo.backup([("grows", io.BytesIO(data))])
    repo.restore("latest", tmp_path / "out")
    assert (tmp_path / "out" / "grows").read_bytes() == data


def test_restore_goes_on_past_a_damaged_file_list_chunk(
    tmp_path: Path, store: dict[str, bytes], repo: Repository
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3000):
        (src / f"file-with-a-longish-name-{i:05d}.txt").write_text(f"content {i}")
    snap = repo.backup(src).snapshot
    index, _ = repo.core.load_index(snap.group)
    ids = snap.filelist_ids()
    assert len(ids) >= 3
    loc = index.get(ids[1])
    assert loc is not None
    key = f"groups/{snap.group}/packs/{loc.pack_id.hex()}"
    damaged = bytearray(store[key])
    damaged[loc.offset + loc.length // 2] ^= 1
    store[key] = bytes(damaged)
    result = repo.restore(snap.id, tmp_path / "out")
    assert [p for p, _ in result.errors] == ["(file list)"]
    restored = sorted((tmp_path / "out").iterdir())
    assert 0 < len(restored) < 3000
    for path in restored:
        assert path.read_text() == f"content {int(path.name[-9:-4])}"
    assert (tmp_path / "out" / "file-with-a-longish-name-00000.txt").exists()
    assert (tmp_path / "out" / "file-with-a-longish-name-02999.txt").exists()


def test_metadata_only_changes_reach_the_next_snapshot(tmp_path: Path, repo: Repository) -> None:
    src = make_tree(tmp_path / "src")
    repo.backup(src)
    (src / "script.sh").chmod(0o700)
    os.utime(src / "docs", ns=(1_500_000_000_000_000_000,) * 2)
    os.utime(src / "empty.txt", ns=(1_400_000_000_000_000_000,) * 2)
    second = repo.backup(src)
    assert second.stats.bytes_new < 4096  # only the file list changed
    repo.restore("latest", tmp_path / "out")
    assert_same_tree(src, tmp_path / "out")


def test_sort_keys_order_paths_component_by_component() -> None:
    from kvbackup.sources import FILE, Entry

    paths = [b"a", b"a-b", b"a/x", b"a/x/y", b"a.b", b"ab", b"a\xff", b"b"]
    by_key = sorted(paths, key=lambda p: Entry(path=p, kind=FILE).sort_key())
    assert by_key == sorted(paths, key=lambda p: tuple(p.split(b"/")))
