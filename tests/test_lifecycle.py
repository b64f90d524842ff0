"""forget, prune, locks and snapshot filters, end to end on a local store (the real
``kvbackup`` command where a user would use it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import assert_same_tree
from kvtools import cli_env, init_repo, kvb, kvb_json, open_repo, write_tree
from lifecycle_tools import build_history, check_kept, folder_size, keys_under, version

from kvbackup.core.locks import LockInfo, acquire_backup, acquire_exclusive
from kvbackup.errors import ExitCode, SnapshotNotFoundError
from kvbackup.format.envelope import ObjectType
from kvbackup.ops.retention import RetentionPolicy


@pytest.fixture
def history(tmp_path: Path) -> tuple[str, Path, list[str]]:
    url = str(tmp_path / "repo")
    src, ids = build_history(url, tmp_path)
    return url, src, ids


def test_forget_keep_last_prune_frees_groups_and_repacks_keeping_the_kept_snapshot(
    history: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    url, src, ids = history
    cache = tmp_path / "cache"
    before = folder_size(Path(url))
    repo = open_repo(url)
    old_group = repo.core.load_snapshot(ids[0]).group
    repo.close()
    out = kvb_json("forget", "-r", url, "--keep-last", "1", "--prune", cache=cache)
    assert [i["id"] for i in out["kept"]] == [ids[2]]
    assert out["kept"][0]["reasons"] == ["last"]
    assert sorted(i["id"] for i in out["removed"]) == ids[:2]
    prune = out["prune"]
    assert prune["groups_deleted"] == [old_group]
    assert prune["packs_repacked"] > 0 and prune["chunks_repacked"] > 0
    assert prune["requests"]["delete"] >= prune["objects_deleted"] > 0
    after = folder_size(Path(url))
    assert after < before - 150_000  # the whole of group A, and half of B's packs
    repo = open_repo(url)
    assert keys_under(repo, f"groups/{old_group}/") == []
    group = repo.core.load_snapshot(ids[2]).group
    assert len(keys_under(repo, f"groups/{group}/index/")) == 1  # fragments merged
    repo.close()
    check_kept(url, {ids[2]: src}, tmp_path)
    # Nothing left to do: a second prune frees nothing.
    again = kvb_json("prune", "-r", url, cache=cache)
    assert again["bytes_freed"] == 0 and again["objects_deleted"] == 0


def test_forget_dry_run_names_the_rule_for_each_snapshot_and_changes_nothing(
    history: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    url, _src, ids = history
    before = sorted(p.relative_to(url) for p in Path(url).rglob("*"))
    done = kvb("forget", "-r", url, "--keep-last", "1", "--keep-groups", "1", "--dry-run",
               "--prune", cache=tmp_path / "c")  # fmt: skip
    text = done.stdout.decode()
    lines = {line.split()[2 if line.startswith("would") else 1]: line for line in text.splitlines()}
    assert lines[ids[2]].startswith("keep") and lines[ids[2]].endswith("(last, group)")
    assert lines[ids[1]].startswith("keep") and lines[ids[1]].endswith("(group)")
    assert lines[ids[0]].startswith("would remove") and lines[ids[0]].endswith("keeps it)")
    assert "would free" in text and "1 unused group(s) deleted" in text
    assert sorted(p.relative_to(url) for p in Path(url).rglob("*")) == before


def test_a_dry_run_counts_what_deleting_whole_groups_deletes_as_the_real_run_does(
    history: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    url, _src, _ids = history
    policy = ["--keep-last", "1", "--keep-groups", "1", "--prune"]
    planned = kvb_json("forget", "-r", url, *policy, "--dry-run", cache=tmp_path / "c")
    done = kvb_json("forget", "-r", url, *policy, cache=tmp_path / "c")
    counts = ("packs_deleted", "fragments_deleted", "objects_deleted", "orphan_packs_deleted",
              "bytes_freed")  # fmt: skip
    assert done["prune"]["groups_deleted"] and done["prune"]["packs_deleted"] > 0
    assert {k: planned["prune"][k] for k in counts} == {k: done["prune"][k] for k in counts}


def test_forget_named_snapshots_and_the_python_api_report_reasons(
    history: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    url, _src, ids = history
    kvb("forget", "-r", url, ids[1], cache=tmp_path / "c")
    repo = open_repo(url)
    try:
        assert [s.id for s in repo.snapshots()] == [ids[0], ids[2]]
        result = repo.forget(RetentionPolicy(groups=1), dry_run=True)
        assert [(i.id, i.reasons) for i in result.kept] == [(ids[2], ["group"])]
        assert [(i.id, i.keep) for i in result.removed] == [(ids[0], False)]
    finally:
        repo.close()


def test_rules_removing_every_snapshot_of_a_source_need_allow_empty(
    history: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    url, _src, _ids = history
    done = kvb("forget", "-r", url, "--keep-tag", "nothing-has-it", cache=tmp_path / "c",
               expect=ExitCode.USAGE)  # fmt: skip
    assert b"--allow-empty" in done.stderr and b"Traceback" not in done.stderr
    kvb("forget", "-r", url, "--keep-last", "0", "--keep-tag", "x", "--allow-empty",
        cache=tmp_path / "c")  # fmt: skip
    repo = open_repo(url)
    assert repo.snapshots() == []
    repo.close()
    kvb("forget", "-r", url, cache=tmp_path / "c", expect=ExitCode.ERROR)  # no rule at all


def test_a_live_lock_is_reported_with_host_pid_and_age_and_exits_14(
    history: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    url, _src, _ids = history
    repo = open_repo(url)
    lock = acquire_exclusive(repo.core, "prune")
    try:
        done = kvb("prune", "-r", url, cache=tmp_path / "c", expect=ExitCode.LOCKED)
        err = done.stderr.decode()
        assert f"pid {os.getpid()} on {socket.gethostname()}" in err
        assert re.search(r"refreshed \d+s ago", err)
        kvb("forget", "-r", url, "--keep-last", "1", cache=tmp_path / "c", expect=14)
        # unlock leaves a live lock alone.
        assert "no stale locks" in kvb("unlock", "-r", url, cache=tmp_path / "c").stdout.decode()
    finally:
        lock.release()
        repo.close()


def test_unlock_removes_stale_locks_reporting_host_and_age(
    history: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    url, _src, _ids = history
    repo = open_repo(url)
    old = time.time() - 3 * 3600
    info = LockInfo("exclusive", "prune", "elsewhere", 4242, "ann", old, old, key="locks/exclusive")
    repo.core.put_object(info.key, ObjectType.LOCK, info.to_json())
    repo.close()
    text = kvb("unlock", "-r", url, cache=tmp_path / "c").stdout.decode()
    assert "pid 4242 on elsewhere" in text and "180 min ago" in text
    assert "no stale locks" in kvb("unlock", "-r", url, cache=tmp_path / "c").stdout.decode()


def test_the_next_prune_removes_a_lock_not_refreshed_for_its_lifetime_saying_so(
    history: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    url, _src, _ids = history
    repo = open_repo(url)
    old = time.time() - 3 * 3600
    info = LockInfo("exclusive", "prune", "elsewhere", 4242, "ann", old, old, key="locks/exclusive")
    repo.core.put_object(info.key, ObjectType.LOCK, info.to_json())
    repo.close()
    done = kvb("prune", "-r", url, cache=tmp_path / "c")
    (notice,) = [line for line in done.stderr.decode().splitlines() if "stale" in line]
    assert notice.startswith("kvbackup: removed a stale lock: prune lock held by pid 4242 on ")
    assert "elsewhere" in notice and "lifetime of 30m" in notice
    repo = open_repo(url)
    assert keys_under(repo, "locks/") == []
    repo.close()


def test_prune_refuses_a_damaged_repository_unless_forced(
    history: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    url, _src, ids = history
    repo = open_repo(url)
    group = repo.core.load_snapshot(ids[2]).group
    pack = keys_under(repo, f"groups/{group}/packs/")[0]
    repo.core.raw_store.delete(pack)
    repo.close()
    done = kvb("prune", "-r", url, cache=tmp_path / "c", expect=ExitCode.CORRUPT)
    assert b"prune refused" in done.stderr and b"--force" in done.stderr
    # Forced, it prunes what it can and leaves the damaged group as it is.
    forced = kvb_json("prune", "-r", url, "--force", cache=tmp_path / "c")
    assert group in forced["groups_skipped"]
    repo = open_repo(url)
    assert pack not in keys_under(repo, f"groups/{group}/packs/")
    assert len(keys_under(repo, f"groups/{group}/packs/")) > 0
    repo.close()


def test_prune_leaves_alone_the_groups_of_a_running_backup(
    history: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    url, _src, ids = history
    repo = open_repo(url)
    snap = repo.core.load_snapshot(ids[2])
    groups = {repo.core.load_snapshot(i).group for i in ids}
    backup_lock = acquire_backup(repo.core, snap.host, snap.source)
    try:
        # Every snapshot of the source forgotten while its backup runs: its groups stay.
        out = kvb_json("forget", "-r", url, *ids, "--prune", cache=tmp_path / "c")
        assert out["prune"]["groups_deleted"] == []
        assert set(out["prune"]["groups_skipped"]) == groups
        assert keys_under(repo, f"groups/{snap.group}/packs/")
    finally:
        backup_lock.release()
        repo.close()


def test_a_backup_waits_while_a_prune_holds_the_lock(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    init_repo(url).close()
    src = write_tree(tmp_path / "src", {"a.txt": b"a" * 100})
    repo = open_repo(url)
    lock = acquire_exclusive(repo.core, "prune")
    cmd = [sys.executable, "-m", "kvbackup", "backup", "-r", url, str(src), "--json"]
    proc = subprocess.Popen(cmd, env=cli_env(tmp_path / "c"), stdout=subprocess.PIPE)
    try:
        time.sleep(3)
        assert proc.poll() is None, "the backup did not wait for the exclusive lock"
    finally:
        lock.release()
        repo.close()
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert json.loads(out)["snapshot"]


def test_filters_choose_snapshots_and_latest_is_per_source(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    repo = init_repo(url)
    a = write_tree(tmp_path / "a", {"f": b"A"})
    b = write_tree(tmp_path / "b", {"f": b"B"})
    sa = repo.backup(a, host="h1", tags=["daily", "x"]).snapshot.id
    time.sleep(1.1)
    sb = repo.backup(b, host="h2", tags=["daily"]).snapshot.id
    repo.close()
    cache = tmp_path / "c"
    assert [s["id"] for s in kvb_json("snapshots", "-r", url, "--host", "h1", cache=cache)] == [sa]
    assert [s["id"] for s in kvb_json("snapshots", "-r", url, "--tag", "daily,x", cache=cache)] == [
        sa
    ]
    got = kvb_json("snapshots", "-r", url, "--tag", "daily", "--path", str(b), cache=cache)
    assert [s["id"] for s in got] == [sb]
    grouped = kvb_json("snapshots", "-r", url, "--group-by", "host", cache=cache)
    assert [g["group"] for g in grouped] == [{"host": "h1"}, {"host": "h2"}]
    kvb("restore", "-r", url, "latest", tmp_path / "out", "--path", str(a), cache=cache)
    assert_same_tree(a, tmp_path / "out")
    assert kvb("ls", "-r", url, "latest", "--host", "h2", cache=cache).stdout == b"f\n"
    kvb("restore", "-r", url, "latest", tmp_path / "no", "--host", "h3", cache=cache, expect=15)


def test_forget_group_by_applies_rules_per_grouping(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    repo = init_repo(url)
    a = write_tree(tmp_path / "a", {"f": b"A"})
    b = write_tree(tmp_path / "b", {"f": b"B"})
    for _ in range(2):
        repo.backup(a, host="h")
        repo.backup(b, host="h")
        time.sleep(1.1)
    per_source = repo.forget(RetentionPolicy(last=1), dry_run=True)
    together = repo.forget(RetentionPolicy(last=1), dry_run=True, group_by=())
    repo.close()
    assert len(per_source.kept) == 2 and len(together.kept) == 1


def test_version_helper_makes_half_used_packs(tmp_path: Path) -> None:
    # The history the prune tests rely on really leaves packs partly used.
    v1 = version(tmp_path / "t", 1)
    assert len(list(v1.iterdir())) == 40
    v2 = version(tmp_path / "t", 2)
    assert len(list(v2.iterdir())) == 21
    shutil.rmtree(v2)


def test_a_forgotten_whole_id_is_not_found_even_when_a_longer_id_starts_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Earlier versions gave two backups in one second the ids T and T-2; with T forgotten,
    # "restore T" must not quietly restore T-2. (New ids all have one length, so none is a
    # prefix of another: only ids an earlier version wrote can meet this.)
    url = str(tmp_path / "repo")
    repo = init_repo(url)
    src = write_tree(tmp_path / "src", {"f": b"x"})
    earlier_versions_ids = iter(["20260101T000000Z", "20260101T000000Z-2"])
    monkeypatch.setattr("kvbackup.ops.backup.new_snapshot_id", lambda t: next(earlier_versions_ids))
    first = repo.backup(src).snapshot.id
    second = repo.backup(src).snapshot.id
    assert (first, second) == ("20260101T000000Z", "20260101T000000Z-2")
    repo.forget(snapshots=[first])
    with pytest.raises(SnapshotNotFoundError):
        repo.resolve_snapshot(first)
    assert repo.resolve_snapshot(first[:8]).id == second
    repo.close()
