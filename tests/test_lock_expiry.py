"""Locks that expire and locks that readers hold.

A prune killed while it holds the exclusive lock leaves the lock behind; the next command
finds its process gone (or the lock not refreshed for its lifetime) and removes it, saying
so, instead of asking for ``kvbackup unlock``. Reading commands (restore, ls, cat, find,
verify, mount, ...) hold a read lock, so a prune refuses to start under them (exit 14) and
they wait while a prune runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_same_tree
from kvtools import PASSWORD, cli_env, init_repo, kvb, open_repo, write_tree
from lifecycle_tools import build_history, check_kept, keys_under

from kvbackup.core import locks
from kvbackup.core.locks import LockInfo, acquire_exclusive, acquire_read
from kvbackup.core.progress import ProgressEvent
from kvbackup.errors import ExitCode, LockedError
from kvbackup.format.envelope import ObjectType
from kvbackup.repository import Repository

#: A snapshot record name that sorts first: a FIFO there makes the next reader of the
#: records block (a store read that never answers) after it has taken its lock.
HANGING_RECORD = "20000101T000000Z"


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def wait_for(path: Path, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.005)


def put_lock(url: str, info: LockInfo) -> None:
    repo = open_repo(url)
    repo.core.put_object(info.key, ObjectType.LOCK, info.to_json())
    repo.close()


def test_a_sigkilled_prune_leaves_its_lock_and_the_next_prune_removes_it_saying_so(
    tmp_path: Path,
) -> None:
    repo_dir = tmp_path / "repo"
    src, ids = build_history(str(repo_dir), tmp_path)
    hang = repo_dir / "snapshots" / HANGING_RECORD
    os.mkfifo(hang)
    prune = subprocess.Popen(
        [sys.executable, "-m", "kvbackup", "prune", "-r", str(repo_dir), "--no-cache"],
        env=cli_env(tmp_path / "cache"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lock_file = repo_dir / "locks" / "exclusive"
    try:
        wait_for(lock_file)
        time.sleep(0.3)  # it is now blocked reading the records, holding the lock
        assert prune.poll() is None, prune.communicate()
    finally:
        os.kill(prune.pid, signal.SIGKILL)
        prune.communicate()
    assert prune.returncode == -signal.SIGKILL
    hang.unlink()
    assert lock_file.exists()  # left behind: nothing ran to remove it

    done = kvb("forget", "-r", repo_dir, "--keep-last", "1", "--prune", cache=tmp_path / "c")
    notices = [line for line in done.stderr.decode().splitlines() if "stale" in line]
    (notice,) = notices
    assert notice.startswith(
        f"kvbackup: removed a stale lock: prune lock held by pid {prune.pid} on "
        f"{socket.gethostname()}, refreshed "
    )
    assert notice.endswith(f"(process {prune.pid} is gone from this host)")
    repo = open_repo(str(repo_dir))
    assert keys_under(repo, "locks/") == []
    assert [s.id for s in repo.snapshots()] == [ids[2]]
    repo.close()
    check_kept(str(repo_dir), {ids[2]: src}, tmp_path)


def test_a_stale_read_lock_of_a_dead_process_does_not_stop_a_prune(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    build_history(url, tmp_path)
    now = time.time()
    host = socket.gethostname()
    pid = dead_pid()
    put_lock(url, LockInfo("read", "restore", host, pid, "ann", now, now, key="locks/read-1"))
    done = kvb("prune", "-r", url, cache=tmp_path / "c")
    assert f"removed a stale lock: restore lock held by pid {pid} on {host}" in done.stderr.decode()


def test_a_prune_refuses_while_a_restore_holds_its_read_lock(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    src, ids = build_history(url, tmp_path)
    reading, go_on = threading.Event(), threading.Event()

    def progress(event: ProgressEvent) -> None:
        reading.set()
        assert go_on.wait(60)

    repo = open_repo(url)
    result: list[object] = []
    restore = threading.Thread(
        target=lambda: result.append(repo.restore(ids[2], tmp_path / "out", progress=progress))
    )
    restore.start()
    try:
        assert reading.wait(60)
        done = kvb("prune", "-r", url, cache=tmp_path / "c", expect=ExitCode.LOCKED)
        err = done.stderr.decode()
        assert err.startswith(
            f"kvbackup: error: the repository is in use: restore lock held by pid {os.getpid()} on "
            f"{socket.gethostname()}"
        )
        assert "prune could delete data it is reading" in err and len(err.splitlines()) == 1
        kvb("forget", "-r", url, "--keep-last", "1", cache=tmp_path / "c", expect=14)
    finally:
        go_on.set()
        restore.join(60)
    repo.close()
    assert result and not result[0].errors  # type: ignore[attr-defined]
    assert_same_tree(src, tmp_path / "out")
    kvb("prune", "-r", url, cache=tmp_path / "c")  # the restore is over: its lock is gone


def test_a_prune_refuses_while_kvbackup_cat_streams_a_file(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    init_repo(url).close()
    big = os.urandom(600_000)  # more than a pipe holds: cat blocks until it is read
    src = write_tree(tmp_path / "src", {"big.bin": big})
    kvb("backup", "-r", url, src, "-q", cache=tmp_path / "c")
    cat = subprocess.Popen(
        [sys.executable, "-m", "kvbackup", "cat", "-r", url, "latest", "big.bin"],
        env=cli_env(tmp_path / "c"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert cat.stdout is not None
        first = cat.stdout.read(1000)  # cat is running (and now blocked on the full pipe)
        done = kvb("prune", "-r", url, cache=tmp_path / "c", expect=ExitCode.LOCKED)
        assert b"the repository is in use: cat lock held by pid %d" % cat.pid in done.stderr
        rest = cat.stdout.read()
        cat.wait(60)
    finally:
        if cat.poll() is None:
            cat.kill()
    assert cat.returncode == 0, cat.stderr.read() if cat.stderr else ""
    assert first + rest == big
    kvb("prune", "-r", url, cache=tmp_path / "c")


def test_a_reader_waits_while_a_prune_holds_the_exclusive_lock_then_reads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locks, "WAIT_POLL", 0.05)
    url = str(tmp_path / "repo")
    src, ids = build_history(url, tmp_path)
    repo = open_repo(url)
    held = acquire_exclusive(repo.core, "prune")
    finished = threading.Event()
    reader = open_repo(url)

    def restore() -> None:
        reader.restore(ids[2], tmp_path / "out")
        finished.set()

    thread = threading.Thread(target=restore)
    with caplog.at_level("WARNING", logger="kvbackup.locks"):
        thread.start()
        assert not finished.wait(1.0)  # waiting for the prune
        held.release()
        thread.join(60)
    assert finished.is_set()
    assert any("waiting for the repository: prune lock held by pid" in r.message
               for r in caplog.records)  # fmt: skip
    assert_same_tree(src, tmp_path / "out")
    reader.close()
    repo.close()


def test_a_held_lock_is_refreshed_on_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locks, "REFRESH_EVERY", 0.05)
    url = str(tmp_path / "repo")
    init_repo(url).close()
    repo = open_repo(url)
    lock = acquire_read(repo.core, "restore")  # a long restore, say
    deadline = time.monotonic() + 30
    while True:
        stored = locks.read_lock(repo.core, lock.info.key)
        assert stored is not None
        if stored.refreshed > stored.created:
            break
        assert time.monotonic() < deadline, "never refreshed"
        time.sleep(0.05)
    lock.check()
    lock.release()
    repo.close()


def test_a_removed_lock_is_noticed_before_harm_and_a_successor_s_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locks, "REFRESH_EVERY", 3600.0)  # refreshed below, by hand
    url = str(tmp_path / "repo")
    init_repo(url).close()
    repo = open_repo(url)
    lock = acquire_exclusive(repo.core, "prune")
    lock.refresh()
    lock.check()  # refreshed in time and still its own: fine
    # Another process took it for stale and removed it (this one was suspended, say).
    repo.core.store.delete(lock.info.key)
    lock.refresh()
    with pytest.raises(LockedError, match="removed by another process"):
        lock.check()
    # A successor's lock under the same name is not deleted by this one's release.
    successor = acquire_exclusive(repo.core, "forget")
    lock.release()
    assert locks.read_lock(repo.core, successor.info.key) is not None
    successor.release()
    assert keys_under(repo, "locks/") == []
    repo.close()


def test_a_lock_states_its_lifetime_and_is_stale_only_after_it(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    init_repo(url).close()
    repo = open_repo(url)
    now = time.time()
    live = LockInfo("read", "ls", "elsewhere", 1, "", now - 100, now - 100, lifetime=100.5)
    assert not live.stale(now)
    assert live.why_stale(now + 30) == "not refreshed for longer than its lifetime of 100s"
    lock = acquire_read(repo.core, "ls")
    stored = locks.read_lock(repo.core, lock.info.key)
    assert stored is not None and stored.lifetime == locks.STALE_AFTER and stored.token
    lock.release()
    repo.close()


def test_a_store_refusing_the_read_lock_is_read_without_one_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kvbackup_faulty_store: Any
) -> None:
    url = str(tmp_path / "repo")
    src = write_tree(tmp_path / "src", {"a.txt": b"a", "d/b.txt": b"b" * 5000})
    with init_repo(url) as repo:
        repo.backup(src)
    store = kvbackup_faulty_store(url)  # read-only media, or a read-only credential
    store.fail("write", "locks/*", error="permanent")
    with caplog.at_level("WARNING", logger="kvbackup.locks"):
        repo = Repository.open(store, password=PASSWORD)
        assert sorted(e.path for e in repo.entries("latest")) == [b"a.txt", b"d", b"d/b.txt"]
        assert not repo.restore("latest", tmp_path / "out").errors
        repo.close()
    assert_same_tree(src, tmp_path / "out")
    warnings = [r.message for r in caplog.records if "reading without a lock" in r.message]
    assert len(warnings) == 2 and "this restore reads" in warnings[1]


def test_a_backup_lock_under_another_host_name_is_judged_by_its_machine(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    init_repo(url).close()
    repo = open_repo(url)
    lock = locks.acquire_backup(repo.core, "name-of-another-machine", "/data")
    stored = locks.read_lock(repo.core, lock.info.key)
    assert stored is not None and stored.machine == socket.gethostname()
    assert not stored.stale()  # this process is alive
    stored.pid = dead_pid()
    assert stored.why_stale() == f"process {stored.pid} is gone from this host"
    stored.machine = "elsewhere"  # a machine whose processes this one cannot see
    assert not stored.stale()
    lock.release()
    repo.close()
