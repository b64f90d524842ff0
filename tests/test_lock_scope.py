"""Which commands hold which lock, and from when.

* A copy holds a shared lock on its target while it writes: a forget or prune of the
  target refuses (exit 14), as under a reader.
* A repair holds the exclusive lock and refuses while a backup runs (it could index the
  packs of a backup that has not written its index yet, or set aside a record being
  written).
* A restore takes its read lock before it resolves the snapshot's name: a forget (and
  prune) that holds the exclusive lock at that moment is waited for, and ``latest`` then
  means the latest snapshot that is left.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_same_tree
from kvtools import cli_env, init_repo, kvb, open_repo, write_tree
from lifecycle_tools import build_history, version

from kvbackup.core import locks
from kvbackup.core.locks import acquire_exclusive
from kvbackup.core.progress import ProgressEvent
from kvbackup.errors import ExitCode, LockedError
from kvbackup.format.layout import snapshot_key
from kvbackup.ops.prune import run_prune


class Paused:
    """A progress callback that stops its operation at its first event until released."""

    def __init__(self) -> None:
        self.reached, self.go_on = threading.Event(), threading.Event()

    def __call__(self, event: ProgressEvent) -> None:
        self.reached.set()
        assert self.go_on.wait(120)


@contextlib.contextmanager
def paused_in_thread(run: Callable[[Paused], Any]) -> Iterator[list[Any]]:
    """Run ``run(paused)`` on a thread; yield once it is paused; let it finish after."""
    paused, results = Paused(), []
    thread = threading.Thread(target=lambda: results.append(run(paused)))
    thread.start()
    try:
        assert paused.reached.wait(120), "the operation never reported progress"
        yield results
    finally:
        paused.go_on.set()
        thread.join(120)
    assert results, "the operation failed"


@pytest.fixture
def source_repo(tmp_path: Path) -> tuple[str, Path]:
    url = str(tmp_path / "from")
    src, _ids = build_history(url, tmp_path)
    return url, src


def test_a_prune_of_the_target_refuses_while_a_copy_into_it_holds_its_lock(
    tmp_path: Path, source_repo: tuple[str, Path]
) -> None:
    source_url, src = source_repo
    target_url = str(tmp_path / "to")
    cache = tmp_path / "cache"
    init_repo(target_url).close()
    source, target = open_repo(source_url), open_repo(target_url)

    def copy(paused: Paused) -> Any:
        return target.copy_from(source, progress=paused)

    try:
        with paused_in_thread(copy) as results:
            done = kvb("prune", "-r", target_url, cache=cache, expect=ExitCode.LOCKED)
            err = done.stderr.decode()
            assert err.startswith(
                f"kvbackup: error: the repository is in use: copy lock held by pid "
                f"{os.getpid()} on {socket.gethostname()}"
            ), err
            assert "prune could delete data it uses" in err and len(err.splitlines()) == 1
            kvb("forget", "-r", target_url, "--keep-last", "1", cache=cache, expect=14)
        assert len(results[0].copied) == 3
    finally:
        source.close()
        target.close()
    assert not list(Path(target_url, "locks").iterdir())  # the copy's lock went with it
    kvb("prune", "-r", target_url, cache=cache)  # the copy is over: nothing stops a prune
    kvb("restore", "latest", tmp_path / "out", "-r", target_url, "-q", cache=cache)
    assert_same_tree(src, tmp_path / "out")


def test_a_copy_waits_while_the_target_is_being_pruned_then_copies(
    tmp_path: Path, source_repo: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locks, "WAIT_POLL", 0.05)
    source_url, src = source_repo
    target_url = str(tmp_path / "to")
    init_repo(target_url).close()
    source, target, pruning = open_repo(source_url), open_repo(target_url), open_repo(target_url)
    held = acquire_exclusive(pruning.core, "prune")
    results: list[Any] = []
    copying = threading.Thread(target=lambda: results.append(target.copy_from(source)))
    try:
        copying.start()
        copying.join(1.0)
        assert copying.is_alive() and target.snapshots() == []  # waiting, nothing written
    finally:
        held.release()
        copying.join(120)
        for repo in (source, target, pruning):
            repo.close()
    assert results and len(results[0].copied) == 3
    kvb("restore", "latest", tmp_path / "out", "-r", target_url, "-q", cache=tmp_path / "c")
    assert_same_tree(src, tmp_path / "out")


@pytest.mark.parametrize("what", ["index", "snapshots"])
def test_a_repair_refuses_while_a_backup_runs(tmp_path: Path, what: str) -> None:
    url = str(tmp_path / "repo")
    cache = tmp_path / "cache"
    build_history(url, tmp_path)
    backing_up = open_repo(url)
    changed = write_tree(tmp_path / "more", {f"m{i}.bin": os.urandom(5000) for i in range(20)})

    def backup(paused: Paused) -> Any:
        return backing_up.backup(changed, progress=paused)

    try:
        with paused_in_thread(backup) as results:
            done = kvb("repair", what, "-r", url, cache=cache, expect=ExitCode.LOCKED)
            err = done.stderr.decode()
            assert f"the repository is in use: backup lock ({changed}) held by pid" in err, err
            assert "repair could change what it is writing" in err
            kvb("repair", what, "-r", url, "--dry-run", cache=cache)  # a dry run changes nothing
        assert results[0].snapshot.complete
    finally:
        backing_up.close()
    kvb("repair", what, "-r", url, cache=cache)  # the backup is over
    assert not list(Path(url, "locks").iterdir())  # repair released its lock


@pytest.mark.parametrize("what", ["index", "snapshots"])
def test_a_repair_dry_run_reads_under_a_read_lock(
    tmp_path: Path, what: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dry run reads like verify: it waits while a prune holds the exclusive lock, and a
    prune refuses while the dry run reads (it could report a pack it deleted as missing)."""
    monkeypatch.setattr(locks, "WAIT_POLL", 0.05)
    url = str(tmp_path / "repo")
    build_history(url, tmp_path)
    repairing, pruning = open_repo(url), open_repo(url)
    dry_run = getattr(repairing, f"repair_{what}")
    held = acquire_exclusive(pruning.core, "prune")
    results: list[Any] = []
    waiting = threading.Thread(target=lambda: results.append(dry_run(dry_run=True)))
    try:
        waiting.start()
        waiting.join(1.0)
        assert waiting.is_alive() and not results  # waits for the prune
    finally:
        held.release()
        waiting.join(120)
    assert results and results[0].dry_run and not results[0].changed
    paused, go_on = threading.Event(), threading.Event()
    original = repairing.core.bypassing_cache

    @contextlib.contextmanager
    def pause_inside() -> Iterator[None]:
        with original():
            paused.set()
            go_on.wait(30)
            yield

    monkeypatch.setattr(repairing.core, "bypassing_cache", pause_inside)
    inside = threading.Thread(target=lambda: dry_run(dry_run=True))
    try:
        inside.start()
        assert paused.wait(30)  # the dry run is reading
        with pytest.raises(LockedError, match="repair"):
            acquire_exclusive(pruning.core, "prune")
    finally:
        go_on.set()
        inside.join(120)
        repairing.close()
        pruning.close()
    assert not list(Path(url, "locks").iterdir())


def test_a_restore_of_latest_waits_for_a_forget_and_prune_then_restores_what_is_left(
    tmp_path: Path,
) -> None:
    """The read lock comes before the name is resolved. Resolved first, ``latest`` named
    the snapshot the forget removed, whose data the prune then deleted."""
    url = str(tmp_path / "repo")
    _src, ids = build_history(url, tmp_path)
    holder = open_repo(url)
    forget = acquire_exclusive(holder.core, "forget")
    restore = subprocess.Popen(
        [sys.executable, "-m", "kvbackup", "restore", "latest", str(tmp_path / "out"),
         "-r", url, "-q"],
        env=cli_env(tmp_path / "cache"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert restore.stderr is not None
        line = restore.stderr.readline().decode()
        assert "waiting for the repository: forget lock held by pid" in line, line
        for final in (False, True):  # what forget does with the newest snapshot
            key = snapshot_key(ids[2], final)
            if holder.core.store.exists(key):
                holder.core.store.delete(key)
        pruned = run_prune(holder.core, lock=forget, max_unused=0)
        assert pruned.packs_deleted + pruned.packs_repacked > 0  # ids[2]'s own data is gone
    finally:
        forget.release()
        holder.close()
    _out, err = restore.communicate(timeout=120)
    assert restore.returncode == 0, err.decode()
    expected = version(tmp_path / "expected", 1)  # the tree of ids[1], now the latest
    restored = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*"))
    assert restored == sorted(p.relative_to(expected) for p in expected.rglob("*"))
    assert all((tmp_path / "out" / p).read_bytes() == (expected / p).read_bytes() for p in restored)
