"""SIGKILL at seeded points of a forget + prune, on a local store and both S3 servers: the
snapshot kept restores identically, every snapshot still listed restores identically, and
after ``unlock`` a rerun converges (verify clean)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Trials, trial_guard
from oracle import make_tree, manifest, mutate
from places import PASSWORD, init, open_repo, repository_url, restore_differences

from kvbackup.ops.retention import RetentionPolicy

KILLER = Path(__file__).parent.parent / "killed_prune.py"


def _killed_prune(url: str, kill_at: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(KILLER.parent)}
    return subprocess.run([sys.executable, str(KILLER), url, str(kill_at), PASSWORD],
                          capture_output=True, text=True, timeout=240, env=env)  # fmt: skip


@pytest.mark.parametrize("kind", ["local", "moto", "rclone"])
def test_sigkill_during_prune_keeps_every_listed_snapshot_and_a_rerun_converges(
    kind: str, trials: Trials, request: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcomes: dict[str, int] = {}
    for trial in trials:
        with trial_guard(trials, trial):
            url = repository_url(kind, request, trial.workdir, monkeypatch)
            init(url)
            src = trial.workdir / "src"
            make_tree(src, trial.rng, files=16, max_size=200_000)
            made: dict[str, Any] = {}
            with open_repo(url) as repo:
                for round_ in range(3):  # changed versions leave packs partly unused
                    if round_:
                        mutate(src, trial.rng, max_size=200_000)
                    made[repo.backup(str(src)).snapshot.id] = manifest(src)
            # forget deletes 4 records, prune writes packs and a fragment, then deletes:
            # about 20 writes and deletes in all, so the kill lands anywhere in the job
            kill_at = trial.rng.randint(1, 18)
            done = _killed_prune(url, kill_at)
            what = "killed" if done.returncode == -9 else "finished before the kill point"
            assert done.returncode in (0, -9), done.stderr
            outcomes[what] = outcomes.get(what, 0) + 1
            with open_repo(url) as repo:
                listed = [s.id for s in repo.snapshots() if s.complete]
            latest = list(made)[-1]
            assert latest in listed
            for n, snap_id in enumerate(listed):
                target = trial.workdir / f"after-kill-{n}"
                assert restore_differences(url, snap_id, made[snap_id], target) == []
            with open_repo(url) as repo:  # the next run: unlock what the killed one held
                repo.unlock()  # the killed process is gone: its lock is stale
                repo.forget(RetentionPolicy(last=1), prune=True, max_unused=0.0)
                assert [s.id for s in repo.snapshots()] == [latest]
                report = repo.verify(use_cache=False)
            assert report.ok, [p.message for p in report.problems]
            assert restore_differences(url, latest, made[latest], trial.workdir / "converged") == []
    print(f"kill outcomes: {outcomes}")
