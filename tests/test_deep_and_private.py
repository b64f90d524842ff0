"""Deep trees are walked without recursion; repositories and caches are private."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from helpers import cli_env, kvbackup, remove_deep_tree

DEPTH = 1100


def deep_tree(root: Path) -> bytes:
    """``root/d/d/.../d/leaf.txt``, DEPTH folders deep; returns the leaf's relative path."""
    rel = b"/".join([b"d"] * DEPTH)
    folder = os.fsencode(root)
    os.mkdir(folder)
    for _ in range(DEPTH):  # os.makedirs recurses
        folder = os.path.join(folder, b"d")
        os.mkdir(folder)
    leaf = rel + b"/leaf.txt"
    with open(os.path.join(os.fsencode(root), leaf), "wb") as fh:
        fh.write(b"at the bottom")
    return leaf


def listing(root: Path) -> dict[bytes, tuple[str, int]]:
    """Relative path -> (kind, mode) of everything below ``root``, walked with a stack."""
    out: dict[bytes, tuple[str, int]] = {}
    base = os.fsencode(root)
    stack = [b""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(base, rel) if rel else base) as it:
            for entry in it:
                path = rel + b"/" + entry.name if rel else entry.name
                st = entry.stat(follow_symlinks=False)
                kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
                out[path] = (kind, stat.S_IMODE(st.st_mode))
                if kind == "dir":
                    stack.append(path)
    return out


def test_a_1100_level_tree_backs_up_restores_verifies_and_diffs(tmp_path: Path) -> None:
    src, out, repo = tmp_path / "src", tmp_path / "out", tmp_path / "repo"
    try:
        leaf = deep_tree(src)
        kvbackup("init", repo)
        kvbackup("backup", src, "--repo", repo)
        with open(os.path.join(os.fsencode(src), leaf), "ab") as fh:
            fh.write(b", changed")
        kvbackup("backup", src, "--repo", repo)
        kvbackup("restore", "latest", out, "--repo", repo)
        assert listing(out) == listing(src)
        with open(os.path.join(os.fsencode(out), leaf), "rb") as fh:
            assert fh.read() == b"at the bottom, changed"
        kvbackup("verify", "--repo", repo)
        kvbackup("verify", "--full", "latest", src, "--repo", repo)
        snaps = kvbackup("snapshots", "--repo", repo).stdout
        ids = [w for w in snaps.split() if len(w) >= 16 and w[:8].isdigit() and "T" in w]
        diff = kvbackup("diff", ids[0], ids[-1], "--repo", repo)
        assert "leaf.txt" in diff.stdout
    finally:
        for folder in (src, out):
            remove_deep_tree(folder)


def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in root.rglob("*")}


def test_a_local_repository_is_private_after_init_and_backup(tmp_path: Path) -> None:
    repo, src, cache = tmp_path / "repo", tmp_path / "src", tmp_path / "cache"
    src.mkdir()
    (src / "file.txt").write_text("x")
    env = cli_env(KVBACKUP_CACHE_DIR=str(cache))
    kvbackup("init", repo, env=env)
    assert stat.S_IMODE(repo.stat().st_mode) == 0o700
    after_init = modes(repo)
    assert after_init, "init wrote nothing"
    kvbackup("backup", src, "--repo", repo, env=env)
    kvbackup("verify", "--repo", repo, env=env)
    found = modes(repo)
    assert len(found) > len(after_init)
    for name, mode in found.items():
        path = repo / name
        if path.is_dir():
            assert mode == 0o700, (name, oct(mode))
        elif name.startswith("keys/"):
            assert mode == 0o400, (name, oct(mode))
        else:
            assert mode == 0o600, (name, oct(mode))
    cached = modes(cache)
    assert any(not (cache / n).is_dir() for n in cached), "nothing was cached"
    for name, mode in cached.items():
        expected = 0o700 if (cache / name).is_dir() else 0o600
        assert mode == expected, (name, oct(mode))
