"""Four backup processes and a forget + prune at once: every snapshot a backup reported
restores identically, and verify finds nothing wrong."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kvtools import cli_env, kvb, open_repo, write_tree
from lifecycle_tools import build_history, check_kept


def test_four_backups_and_a_prune_at_once_leave_every_reported_snapshot_restorable(
    tmp_path: Path,
) -> None:
    url = str(tmp_path / "repo")
    src, _ids = build_history(url, tmp_path)
    other = write_tree(tmp_path / "other", {f"d/{i}.txt": bytes([i]) * 3000 for i in range(30)})
    cache = tmp_path / "cache"
    env = cli_env(cache)
    exe = [sys.executable, "-m", "kvbackup"]
    jobs = [
        ([*exe, "backup", "-r", url, str(tree), "--json", *extra], tree)
        for tree, extra in ((src, []), (src, ["--full"]), (other, []), (other, []))
    ]
    procs = [(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE), tree) for cmd, tree in jobs]
    prune = subprocess.Popen(
        [*exe, "forget", "-r", url, "--keep-last", "1", "--prune", "--max-unused", "0", "--json"],
        env=env,
        stdout=subprocess.PIPE,
    )
    reported: dict[str, Path] = {}
    for proc, tree in procs:
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0
        reported[json.loads(out)["snapshot"]] = tree
    out, _ = prune.communicate(timeout=240)
    assert prune.returncode == 0
    assert len(reported) == 4
    # A backup that completed before forget listed the snapshots may have been forgotten
    # (it was not the last of its source); every other one must be there, whole.
    forgotten = {i["id"] for i in json.loads(out)["removed"]}
    kept = {snap: tree for snap, tree in reported.items() if snap not in forgotten}
    assert len(kept) >= 2
    check_kept(url, kept, tmp_path)
    # With the backups done, a second prune is free to work on every group.
    kvb("prune", "-r", url, cache=cache)
    check_kept(url, kept, tmp_path / "again")
    repo = open_repo(url)
    assert {s.id for s in repo.snapshots()} >= set(kept)
    repo.close()
