"""A repository with a history worth pruning, and checks that pruning lost nothing.

History (small chunks and packs, so a few hundred KiB make many of each):

* group A: one full backup of version 0 of the tree;
* group B: a full backup of version 1 (40 small files), then version 2 (every other file
  removed, one added), so B's packs are half used once version 1 is forgotten.

``forget --keep-last 1`` then leaves version 2: group A is deleted whole and B repacked.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from helpers import assert_same_tree
from kvtools import init_repo, open_repo, write_tree

from kvbackup.repository import Repository


def version(root: Path, n: int, seed: int = 1) -> Path:
    """Make ``root`` hold version ``n`` of the tree (0, 1 or 2)."""
    rng = random.Random(seed * 10 + min(n, 1))
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    if n == 0:
        return write_tree(root, {"old/big.bin": rng.randbytes(150_000), "old/x.txt": b"x" * 100})
    files = {f"f{i:02d}.bin": rng.randbytes(6000) for i in range(40)}
    if n >= 2:
        files = {k: v for i, (k, v) in enumerate(sorted(files.items())) if i % 2 == 0}
        files["new.bin"] = b"new" * 2000
    return write_tree(root, files)


def build_history(url: str, tmp: Path) -> tuple[Path, list[str]]:
    """The history above in the repository at ``url``; returns the source folder (holding
    version 2) and the snapshot ids, oldest first."""
    src = tmp / "src"
    ids = []
    repo = init_repo(url)
    try:
        for n, full in ((0, True), (1, True), (2, False)):
            version(src, n)
            ids.append(repo.backup(src, full=full).snapshot.id)
    finally:
        repo.close()
    return src, ids


def restore_and_compare(repo: Repository, snapshot: str, expected: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    result = repo.restore(snapshot, target)
    assert not result.errors, result.errors
    assert_same_tree(expected, target)


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def check_kept(url: str, expected: dict[str, Path], tmp: Path) -> None:
    """Every kept snapshot restores identically and verify finds no problem."""
    repo = open_repo(url)
    try:
        report = repo.verify(use_cache=False)
        assert report.ok, [p.message for p in report.problems]
        for n, (snap, tree) in enumerate(expected.items()):
            restore_and_compare(repo, snap, tree, tmp / f"restored-{n}")
    finally:
        repo.close()


def keys_under(repo: Repository, prefix: str) -> list[str]:
    return sorted(repo.core.store.list(prefix))
