"""Small files read on the writer's worker threads: the bound on what is in flight, the
order ids arrive in, and what a failing read, a file that changes while it waits, or a
failing store does to the backup and to the snapshots before it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import BinaryIO

import pytest
from helpers import PASSWORD, cli_env, kvbackup
from kvbackup_directory.source import DirectorySource

from kvbackup import Repository
from kvbackup.core.writer import BATCH_CHUNKS, ChunkRef, ChunkWriter
from kvbackup.errors import ExitCode, StoreError
from kvbackup.format.envelope import ObjectType
from kvbackup.format.index import GroupIndex
from kvbackup.format.snapshots import COMPLETE
from kvbackup.sources import Entry
from kvbackup.store import MappingStore

SMALL_FILE = 1024 * 1024  # the default chunker's bound of a one-chunk file


def _writer(repo: Repository, workers: int = 2) -> ChunkWriter:
    core = repo.core
    return ChunkWriter(
        core, "0123456789abcdef", GroupIndex(), core.codec, core.config.pack_size, workers
    )


def _small_tree(root: Path, count: int) -> Path:
    root.mkdir()
    for n in range(count):
        folder = root / f"d{n // 50:02d}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{n:04d}.txt").write_bytes(f"file {n} ".encode() * (1 + n % 300))
    return root


class ThreadedDirectory(DirectorySource):
    """The directory source with reads on the writer's threads (off by default: on two
    cores it costs more than it overlaps; docs/performance.md)."""

    threaded_reads = True


def test_reads_run_on_worker_threads_and_give_the_ids_of_the_same_bytes() -> None:
    repo = Repository.init({}, password=PASSWORD)
    writer = _writer(repo)
    threads: list[int] = []

    def read(n: int) -> bytes:
        threads.append(threading.get_ident())
        return b"chunk %d " % n * 1000

    refs = [writer.add_read(ObjectType.DATA, lambda n=n: read(n), 8000) for n in range(200)]
    writer.finish()
    assert threading.get_ident() not in threads
    assert [r.id for r in refs] == [repo.core.hasher(read(n)) for n in range(200)]
    assert [r.size for r in refs] == [len(read(n)) for n in range(200)]
    assert writer.stats.chunks_new == 200


def test_ids_and_read_errors_arrive_in_the_order_chunks_were_handed_over() -> None:
    repo = Repository.init({}, password=PASSWORD)
    writer = _writer(repo)
    refs: list[ChunkRef] = []

    def failing() -> bytes:
        raise PermissionError(13, "Permission denied")

    for n in range(600):
        if n % 7 == 3:
            refs.append(writer.add_read(ObjectType.DATA, failing, 100))
        elif n % 2:
            refs.append(writer.add_read(ObjectType.DATA, lambda n=n: b"r%d" % n * 50, 100))
        else:
            refs.append(writer.add(ObjectType.DATA, b"a%d" % n * 50))
        done = [r.done for r in refs]
        # what the backup's settling relies on: the finished refs are a prefix
        assert done == sorted(done, reverse=True)
    writer.finish()
    assert all(r.done for r in refs)
    failed = [n for n, r in enumerate(refs) if r.error is not None]
    assert failed == [n for n in range(600) if n % 7 == 3]
    assert all(isinstance(refs[n].error, PermissionError) and refs[n].id is None for n in failed)
    assert writer.stats.chunks_new == 600 - len(failed)


def test_the_caller_cannot_run_ahead_of_the_workers_by_more_than_a_few_jobs() -> None:
    repo = Repository.init({}, password=PASSWORD)
    writer = _writer(repo, workers=2)
    bound = (2 * 3 + 2) * BATCH_CHUNKS  # jobs waiting, the one blocked on, the one filling
    # The reads wait until the caller has handed over far more than the bound, which a
    # bounded caller never does: the first read to give up waiting then lets them all go.
    gate = threading.Event()

    def read(n: int) -> bytes:
        if not gate.wait(timeout=1):
            gate.set()
        return os.urandom(512) + b"%d" % n

    refs: list[ChunkRef] = []
    first_unfinished = most = 0
    for n in range(3 * bound):
        refs.append(writer.add_read(ObjectType.DATA, lambda n=n: read(n), 600))
        if len(refs) == 2 * bound:
            gate.set()
        while first_unfinished < len(refs) and refs[first_unfinished].done:  # in order
            first_unfinished += 1
        most = max(most, len(refs) - first_unfinished)
    writer.finish()
    assert all(r.done for r in refs)
    assert 0 < most <= bound


def test_a_worker_read_error_skips_that_file_only(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    src = _small_tree(tmp_path / "src", 300)
    (src / "d03" / "f0170.txt").chmod(0)
    repo = Repository.init({}, password=PASSWORD)
    result = repo.backup(ThreadedDirectory(src))
    assert [p for p, _ in result.skipped] == ["d03/f0170.txt"]
    assert result.stats.files == 299
    out = tmp_path / "out"
    repo.restore("latest", out)
    assert not (out / "d03" / "f0170.txt").exists()
    assert (out / "d05" / "f0299.txt").read_bytes() == (src / "d05" / "f0299.txt").read_bytes()


class ChangingSource(ThreadedDirectory):
    """A directory whose files ``change`` rewrites the moment the backup opens them (after
    they were listed): another program writing to them while the backup runs."""

    def __init__(self, root: Path, change: dict[bytes, bytes]):
        super().__init__(root)
        self.change = change

    def open(self, entry: Entry) -> BinaryIO:
        new = self.change.pop(entry.path, None)
        if new is not None:
            (Path(os.fsdecode(self.root)) / os.fsdecode(entry.path)).write_bytes(new)
        return super().open(entry)


def test_files_that_change_size_while_waiting_to_be_read_are_stored_as_read(
    tmp_path: Path,
) -> None:
    src = _small_tree(tmp_path / "src", 120)
    grown = os.urandom(3 * SMALL_FILE)  # no longer one chunk: read again and cut
    changes = {
        b"d00/f0010.txt": grown,
        b"d01/f0060.txt": b"",  # emptied
        b"d02/f0110.txt": b"shorter",
    }
    repo = Repository.init({}, password=PASSWORD)
    result = repo.backup(ChangingSource(src, dict(changes)))
    assert sorted(p for p, _ in result.skipped) == sorted(os.fsdecode(p) for p in changes)
    assert all("changed size while being read" in e for _, e in result.skipped)
    assert result.stats.files == 120
    assert (
        result.stats.bytes
        == result.stats.bytes_read
        == sum(p.stat().st_size for p in src.rglob("*.txt"))
    )
    out = tmp_path / "out"
    repo.restore("latest", out)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*.txt")} == {
        p.relative_to(src): p.read_bytes() for p in src.rglob("*.txt")
    }
    entries = {e.path: e for e in repo.core.iter_entries(result.snapshot, GroupIndex())}
    assert len(entries[b"d00/f0010.txt"].chunks) > 1
    assert entries[b"d01/f0060.txt"].chunks == []


class FailingPacks(MappingStore):
    """A dict store whose pack writes fail for good after ``n`` of them."""

    def __init__(self, mapping: dict[str, bytes], n: int):
        super().__init__(mapping)
        self.left = n

    def put(self, key: str, value: bytes) -> None:
        if "/packs/" in key:
            self.left -= 1
            if self.left < 0:
                raise StoreError("injected: disk full")
        super().put(key, value)


def test_a_store_error_while_workers_read_leaves_earlier_snapshots_intact(
    tmp_path: Path,
) -> None:
    src = _small_tree(tmp_path / "src", 200)
    first = Repository.init({}, password=PASSWORD, pack_size=1 << 16)
    backing = first.core.raw_store.mapping  # type: ignore[attr-defined]
    first.backup(ThreadedDirectory(src))
    for n in range(0, 200, 3):  # new content: new packs are needed
        path = src / f"d{n // 50:02d}" / f"f{n:04d}.txt"
        path.write_bytes(os.urandom(3000))
    failing = Repository.open(FailingPacks(backing, 2), password=PASSWORD)
    with pytest.raises(StoreError, match="injected: disk full"):
        failing.backup(ThreadedDirectory(src), full=True)
    again = Repository.open(backing, password=PASSWORD)
    snaps = again.snapshots()
    assert [s.state for s in snaps].count(COMPLETE) == 1
    out = tmp_path / "out"
    again.restore(snaps[0].id, out)
    assert (out / "d00" / "f0001.txt").read_bytes() == b"file 1 " * 2


def test_cli_read_error_is_one_line_and_partial(tmp_path: Path) -> None:
    src = _small_tree(tmp_path / "src", 400)
    repo = tmp_path / "repo"
    kvbackup("init", repo)
    kvbackup("backup", src, "--repo", repo)
    before = {p.relative_to(src): p.read_bytes() for p in src.rglob("*.txt")}
    (src / "d04" / "f0222.txt").chmod(0)
    (src / "d07" / "f0399.txt").write_bytes(b"changed")
    # root reads anything; in a user namespace of its own it keeps only owner permissions
    prefix = ["unshare", "--user"] if os.geteuid() == 0 else []
    exe = shutil.which("kvbackup")
    cmd = [exe] if exe else [sys.executable, "-m", "kvbackup"]
    done = subprocess.run(
        [*prefix, *cmd, "backup", str(src), "--repo", str(repo)],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == ExitCode.PARTIAL, done.stderr
    assert "d04/f0222.txt: skipped: Permission denied" in done.stderr
    assert "Traceback" not in done.stderr
    snaps = json.loads(kvbackup("snapshots", "--repo", repo, "--json").stdout)
    assert [s["state"] for s in snaps] == ["complete", "complete"]
    assert snaps[1]["skipped"] == [{"path": "d04/f0222.txt", "error": "Permission denied"}]
    first = tmp_path / "first"
    kvbackup("restore", snaps[0]["id"], first, "--repo", repo)
    assert {p.relative_to(first): p.read_bytes() for p in first.rglob("*.txt")} == before
