"""SIGKILL at seeded points of a restore (several threads writing files at once): no file
stands under its final name unless it is whole, with the snapshot's bytes, mode and mtime;
a second restore then completes, and with ``--delete`` (which also clears the killed run's
temporaries) gives a tree identical to the snapshot's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Trials, trial_guard
from killing import cli_env, sigkill_unless_finished
from oracle import Manifest, differences, make_tree, manifest
from places import init, open_repo, repository_url

from kvbackup.ops.restore_target import is_temp_name


def _named_files(target: Path) -> int:
    """Regular files under their final names below ``target``."""
    return sum(
        1
        for _, _, files in os.walk(target)
        for name in files
        if not is_temp_name(os.fsencode(name))
    )


def _kill_at_seeded_point(url: str, target: Path, after_files: int, writers: str) -> str:
    """Start a restore, SIGKILL it once ``after_files`` files have taken their names (0:
    as soon as the first temporary appears). Returns what became of it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kvbackup", "restore", "latest", str(target), "-r", url,
         "--writers", writers],
        env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if target.exists():
            if after_files == 0 and any(target.rglob(".kvbackup-*.tmp")):
                break
            if after_files and _named_files(target) >= after_files:
                break
        time.sleep(0.002)
    return sigkill_unless_finished(proc)


def _wrong_under_final_names(expected: Manifest, target: Path) -> list[str]:
    """Files and symlinks standing under a final name that are not the snapshot's exactly
    (folders are left out: their modes and times are set at the end of a restore)."""
    got = {
        path: value
        for path, value in manifest(target).items()
        if value[0] != "dir" and not is_temp_name(os.path.basename(path))
    }
    return [
        f"{path!r}: {value} after the kill, {expected.get(path)} in the snapshot"
        for path, value in sorted(got.items())
        if expected.get(path) != value
    ]


@pytest.mark.parametrize(("kind", "writers"), [("local", "0"), ("local", "4")])
def test_sigkill_during_restore_leaves_only_whole_files_and_a_rerun_converges(
    kind: str, writers: str, trials: Trials, request: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcomes: dict[str, int] = {}
    for trial in trials:
        with trial_guard(trials, trial):
            url = repository_url(kind, request, trial.workdir, monkeypatch)
            init(url)
            src = trial.workdir / "src"
            make_tree(src, trial.rng, files=120, max_size=600_000)
            with open_repo(url) as repo:
                snap_id = repo.backup(str(src)).snapshot.id
            expected_root = manifest(src)
            files = sum(1 for v in expected_root.values() if v[0] == "file")
            for n, after in enumerate([0, *sorted(trial.rng.sample(range(1, files), 3))]):
                target = trial.workdir / f"target-{n}"
                what = _kill_at_seeded_point(url, target, after, writers)
                outcomes[what] = outcomes.get(what, 0) + 1
                if target.exists():
                    assert _wrong_under_final_names(expected_root, target) == []
                with open_repo(url) as repo:  # the second restore, in this process
                    result = repo.restore(snap_id, target, delete=True)
                assert not result.errors, result.errors
                assert differences(expected_root, target) == []  # temporaries included
    print(f"kill outcomes: {outcomes}")
