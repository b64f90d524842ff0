"""Prune reads each kept snapshot's file list once: its safety check (verify's structural
part) gathers the chunks the snapshots use, and the plan reuses them instead of reading
every file list again."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from kvtools import PASSWORD, init_repo, open_repo, write_tree
from stores.recordingstore import RecordingStore

from kvbackup.core.repo import open_store
from kvbackup.format.layout import pack_key
from kvbackup.ops.retention import RetentionPolicy
from kvbackup.repository import Repository


def changing_history(url: str, tmp: Path, backups: int = 6) -> list[str]:
    """``backups`` backups of a tree that changes a little each time (a new group at the
    fourth), so kept file lists lie in two groups; returns the snapshot ids."""
    rng = random.Random(7)
    src = tmp / "src"
    files = {f"d{i % 5}/f{i:03d}.txt": rng.randbytes(300) for i in range(120)}
    ids = []
    repo = init_repo(url)
    try:
        for n in range(backups):
            files[f"new/{n}.bin"] = rng.randbytes(3000)
            files.pop(sorted(files)[n], None)
            write_tree(src, files)
            ids.append(repo.backup(src, full=n in (0, 3)).snapshot.id)
    finally:
        repo.close()
    return ids


def file_list_reads(recorder: RecordingStore, url: str) -> tuple[Counter[str], Counter[str]]:
    """For each remaining snapshot: how many times its file-list chunks were read (each
    chunk counted, divided by their number), and how many times it uses them."""
    repo = open_repo(url)
    try:
        reads: Counter[str] = Counter()
        expected: Counter[str] = Counter()
        for snap in repo.snapshots():
            index, _ = repo.core.load_index(snap.group)
            ids = snap.filelist_ids()
            assert ids
            for cid in ids:
                loc = index.get(cid)
                assert loc is not None
                key = pack_key(snap.group, loc.pack_id)
                reads[snap.id] += recorder.times_read(key, loc.offset, loc.offset + loc.length)
            # Another kept snapshot with the same file-list chunk reads it too.
            sharing = sum(1 for other in repo.snapshots() if set(ids) & set(other.filelist_ids()))
            expected[snap.id] = sharing * len(ids)
        return reads, expected
    finally:
        repo.close()


@pytest.mark.parametrize("through_forget", [False, True], ids=["prune", "forget-prune"])
def test_prune_reads_each_kept_file_list_once(tmp_path: Path, through_forget: bool) -> None:
    url = str(tmp_path / "repo")
    ids = changing_history(url, tmp_path)
    if not through_forget:
        repo = open_repo(url)
        repo.forget(RetentionPolicy(last=4))
        repo.close()
    recorder = RecordingStore(open_store(url))
    repo = Repository.open(recorder, password=PASSWORD, cache=False)
    try:
        if through_forget:
            done = repo.forget(RetentionPolicy(last=4), prune=True, max_unused=100)
            assert len(done.removed) == 2 and done.prune is not None
            result = done.prune
        else:
            result = repo.prune(max_unused=100)  # nothing repacked: no pack read whole
    finally:
        repo.close()
    assert result.groups_deleted == [] and result.packs_repacked == 0
    assert result.packs_deleted > 0  # the forgotten snapshots' own chunks went
    reads, expected = file_list_reads(recorder, url)
    assert sorted(reads) == ids[2:]
    assert reads == expected, "a kept file list was read more (or less) than once"


def test_a_dry_run_forget_prune_frees_what_the_real_one_then_frees(tmp_path: Path) -> None:
    """The safety check walks the snapshots a dry-run forget would remove too (they are
    still there), but their chunks must not count as used."""
    url = str(tmp_path / "repo")
    changing_history(url, tmp_path)
    repo = open_repo(url)
    try:
        planned = repo.forget(RetentionPolicy(last=2), dry_run=True, prune=True)
        done = repo.forget(RetentionPolicy(last=2), prune=True)
    finally:
        repo.close()
    assert planned.prune is not None and done.prune is not None
    assert planned.prune.dry_run and not done.prune.dry_run
    assert planned.prune.packs_repacked == done.prune.packs_repacked
    assert planned.prune.bytes_freed == done.prune.bytes_freed > 0
    assert planned.prune.groups_deleted == done.prune.groups_deleted != []
