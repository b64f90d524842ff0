"""SIGKILL at seeded points of a backup, on a local store and both S3 servers: every
earlier snapshot restores identically, and the next run converges."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Trials, trial_guard
from killing import cli_env, sigkill_unless_finished
from oracle import make_tree, manifest, mutate
from places import init, open_repo, repository_url, restore_differences


def _backup_cmd(src: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "kvbackup", "backup", str(src), "-r", url, "--json"]


def _kill_at_seeded_point(src: Path, url: str, delay: float) -> str:
    """Start a backup, wait until its incomplete record exists (it has begun writing), wait
    ``delay`` more seconds, SIGKILL it. Returns what became of it."""
    watcher = open_repo(url)
    before = set(watcher.core.store.list("snapshots/"))
    proc = subprocess.Popen(_backup_cmd(src, url), env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if set(watcher.core.store.list("snapshots/")) - before:
            break
        time.sleep(0.02)
    watcher.close()
    time.sleep(delay)
    return sigkill_unless_finished(proc)


@pytest.mark.parametrize("kind", ["local", "moto", "rclone"])
def test_sigkill_during_backup_keeps_earlier_snapshots_and_the_next_run_converges(
    kind: str, trials: Trials, request: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    outcomes: dict[str, int] = {}
    for trial in trials:
        with trial_guard(trials, trial):
            url = repository_url(kind, request, trial.workdir, monkeypatch)
            init(url)
            src = trial.workdir / "src"
            make_tree(src, trial.rng, files=20, max_size=250_000)
            kept: dict[str, Any] = {}
            with open_repo(url) as repo:
                kept[repo.backup(str(src)).snapshot.id] = manifest(src)
            for round_ in range(2):
                mutate(src, trial.rng, max_size=250_000)
                what = _kill_at_seeded_point(src, url, trial.rng.uniform(0.0, 0.5))
                outcomes[what] = outcomes.get(what, 0) + 1
                for n, (snap_id, expected) in enumerate(kept.items()):
                    target = trial.workdir / f"earlier-{round_}-{n}"
                    assert restore_differences(url, snap_id, expected, target) == []
                with open_repo(url) as repo:  # the next run, in this process
                    latest = repo.backup(str(src)).snapshot.id
                    assert repo.resolve_snapshot("latest").id == latest
                expected = manifest(src)
                target = trial.workdir / f"converged-{round_}"
                assert restore_differences(url, latest, expected, target) == []
                kept[latest] = expected
            with open_repo(url) as repo:
                report = repo.verify(use_cache=False)
            assert report.ok, [p.message for p in report.problems]
    print(f"kill outcomes: {outcomes}")
