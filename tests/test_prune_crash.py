"""A forget + prune SIGKILLed at seeded points: every kept snapshot still restores
identically, verify finds no problem (orphans are reported as such), and after
``unlock`` a rerun finishes the job."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

from kvtools import PASSWORD, kvb, open_repo
from lifecycle_tools import build_history, check_kept, keys_under

HERE = Path(__file__).parent
SEED = 10


def run_killed(root: Path, kill_at: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HERE / "killed_prune.py"), str(root), str(kill_at), PASSWORD],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "PYTHONPATH": str(HERE)},
    )


def test_prune_killed_at_seeded_points_loses_nothing_and_a_rerun_finishes(
    tmp_path: Path,
) -> None:
    template = tmp_path / "template"
    src, ids = build_history(str(template), tmp_path)
    # A clean run on a copy tells how many writes and deletes the whole job makes.
    clean = tmp_path / "clean"
    shutil.copytree(template, clean)
    done = run_killed(clean, -1)
    assert done.returncode == 0, done.stderr
    writes = json.loads(done.stdout)["writes"]
    assert writes > 10
    points = sorted({1, 2, writes, *random.Random(SEED).sample(range(3, writes), 5)})
    for point in points:
        repo_dir = tmp_path / f"killed-{point}"
        shutil.copytree(template, repo_dir)
        killed = run_killed(repo_dir, point)
        assert killed.returncode == -9, f"not killed at write {point}: {killed.stderr}"
        check_kept(str(repo_dir), {ids[2]: src}, tmp_path / f"restore-{point}")
        cache = tmp_path / "cache"
        kvb("unlock", "-r", repo_dir, cache=cache)
        kvb("forget", "-r", repo_dir, "--keep-last", "1", "--prune", "--max-unused", "0",
            cache=cache)  # fmt: skip
        repo = open_repo(str(repo_dir))
        report = repo.verify(use_cache=False)
        assert report.ok and not report.warnings, (point, report.warnings)
        assert [s.id for s in repo.snapshots()] == [ids[2]]
        assert keys_under(repo, "groups/") == keys_under(
            repo, f"groups/{repo.snapshots()[0].group}/"
        )
        repo.close()
        check_kept(str(repo_dir), {ids[2]: src}, tmp_path / f"restore-again-{point}")
