"""The oracle of the robustness suite: a manifest of a source tree, and the comparison of
a restored tree with it (bytes, type, mode, mtime and link target of every entry).

A restored tree may lack entries that restore reported as not restored; any entry present
must match the manifest exactly: damage is allowed to cost files, never to change them.
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
from pathlib import Path

#: path (relative, bytes) -> (kind, mode, mtime_ns, sha256 of the content or link target)
Manifest = dict[bytes, tuple[str, int, int, str]]


def manifest(root: Path) -> Manifest:
    """Every entry under ``root`` (not ``root`` itself)."""
    out: Manifest = {}
    base = os.fsencode(root)
    for directory, dirs, files in os.walk(base):
        for name in dirs + files:
            full = os.path.join(directory, name)
            rel = os.path.relpath(full, base)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", 0, st.st_mtime_ns, os.fsdecode(os.readlink(full)))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns, "")
            else:
                with open(full, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
                out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, digest)
    return out


def differences(
    expected: Manifest, restored: Path, unrestored: set[bytes] | None = None
) -> list[str]:
    """How the tree ``restored`` differs from ``expected``. Paths in ``unrestored`` (what
    restore reported it could not restore; ``None``: nothing) may be missing, along with
    the folders above them keeping other metadata; every entry present must match."""
    allowed = unrestored or set()
    got = manifest(restored)
    out = []
    for path, want in sorted(expected.items()):
        have = got.get(path)
        if have is None:
            if path not in allowed:
                out.append(f"{path!r}: missing")
            continue
        if have != want:
            if (
                want[0] == "dir"
                and have[:2] == want[:2]
                and any(p.startswith(path + b"/") for p in allowed)
            ):
                continue  # a folder whose damaged file is missing: its mtime may differ
            out.append(f"{path!r}: restored {have}, source {want}")
    out.extend(f"{path!r}: not in the source" for path in sorted(set(got) - set(expected)))
    return out


def make_tree(root: Path, rng: random.Random, files: int = 24, max_size: int = 300_000) -> None:
    """A seeded tree: nested folders, files of many sizes (empty ones too), modes,
    symlinks, set mtimes."""
    root.mkdir(parents=True, exist_ok=True)
    for n in range(files):
        mutate_file(root, rng, n, max_size)
    for n in range(3):
        link = root / f"link-{n}"
        if not link.is_symlink():
            link.symlink_to(f"d{n}/target-{rng.randrange(1000)}")
    _settle_dirs(root, rng)


def mutate(root: Path, rng: random.Random, max_size: int = 300_000) -> None:
    """Change a seeded part of the tree: rewrite, append to, add and delete files."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    for path in rng.sample(files, k=min(len(files), 3)):
        if rng.random() < 0.3:
            path.unlink()
        else:
            with path.open("ab") as fh:
                fh.write(rng.randbytes(rng.randrange(1, 5000)))
            os.utime(path, ns=(_mtime(rng), _mtime(rng)))
    for _ in range(2):
        mutate_file(root, rng, rng.randrange(10_000), max_size)
    _settle_dirs(root, rng)


def mutate_file(root: Path, rng: random.Random, n: int, max_size: int) -> None:
    folder = root / f"d{n % 4}" / (f"sub{n % 3}" if n % 2 else "")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"f{n}.bin"
    size = rng.choice([0, 1, rng.randrange(2, 9000), rng.randrange(9000, max_size)])
    # mostly random, partly repetitive: some chunks compress
    data = rng.randbytes(size * 3 // 4) + bytes([n % 251]) * (size - size * 3 // 4)
    path.write_bytes(data)
    path.chmod(rng.choice([0o600, 0o644, 0o640, 0o755]))
    os.utime(path, ns=(_mtime(rng), _mtime(rng)))


def _settle_dirs(root: Path, rng: random.Random) -> None:
    for directory in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        os.utime(directory, ns=(_mtime(rng), _mtime(rng)))


def _mtime(rng: random.Random) -> int:
    return rng.randrange(1_500_000_000, 1_800_000_000) * 10**9 + rng.randrange(10**9)
