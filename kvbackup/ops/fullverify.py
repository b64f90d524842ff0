"""Full verification: restore a snapshot into a temporary folder and compare it with the
source on disk, entry by entry (type, content, mode, mtime, symlink target, device number,
owner, extended attributes, hard links, holes).

Restoring for real checks what a user depends on, the whole way back: the store, every
transform, the file list and the restore itself. See ``docs/verify.md``.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..core.progress import Progress
from ..core.repo import RepoCore
from ..errors import SnapshotNotFoundError, SourceError
from ..excludes import ExcludeMatcher, ExcludeRules
from ..format.snapshots import Snapshot
from ..metadata import AS_ROOT, UNPRIVILEGED_XATTRS, is_sparse, read_xattrs
from ..trees import remove_tree
from .restore import run_restore

_BLOCK = 1024 * 1024

#: Kinds of difference, in the order a difference is looked for.
KINDS = (
    "only-in-source",
    "only-in-snapshot",
    "type",
    "content",
    "target",
    "device",
    "mode",
    "mtime",
    "owner",
    "xattrs",
    "hardlink",
    "sparse",
)


@dataclass
class Difference:
    """One way the restored snapshot differs from the source; ``damaged`` means the entry
    could not be restored (its data is damaged or missing)."""

    path: str
    kind: str
    detail: str = ""


@dataclass
class FullVerifyResult:
    snapshot: str
    source: str
    entries: int = 0
    differences: list[Difference] = field(default_factory=list)
    damaged: list[Difference] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.differences or self.damaged)

    def as_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot,
            "source": self.source,
            "entries": self.entries,
            "ok": self.ok,
            "differences": [vars(d) for d in self.differences],
            "damaged": [vars(d) for d in self.damaged],
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
        }


def snapshot_of_source(repo: RepoCore, source: str) -> Snapshot:
    """The latest complete snapshot whose source is the folder ``source``."""
    identity = os.path.abspath(source)
    snaps = [s for s in repo.snapshots() if s.complete and s.source == identity]
    if not snaps:
        raise SnapshotNotFoundError(f"no snapshot of {identity}: name the snapshot to compare")
    return snaps[-1]


def run_verify_full(
    repo: RepoCore,
    source: str | os.PathLike[str],
    snapshot: str | Snapshot | None = None,
    *,
    temp_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> FullVerifyResult:
    """Restore ``snapshot`` (default: the latest of ``source``) into a temporary folder under
    ``temp_dir`` and compare it with ``source``."""
    started = time.time()
    before = repo.counts.as_dict()
    root = os.fspath(source)
    if not os.path.isdir(root):
        raise SourceError(f"{root}: not a directory")
    snap = snapshot_of_source(repo, root) if snapshot is None else repo.resolve_snapshot(snapshot)
    result = FullVerifyResult(snap.id, os.path.abspath(root))
    workdir = tempfile.mkdtemp(prefix="kvbackup-verify-", dir=temp_dir)
    try:
        restored = os.path.join(workdir, "restored")
        outcome = run_restore(repo, snap, restored, progress=progress)
        unreadable = set()
        for path, error in outcome.errors:
            unreadable.add(os.fsencode(path))
            result.damaged.append(Difference(path, "damaged", error))
        # What the backup's exclude rules left out of the snapshot is not a difference.
        rules = ExcludeMatcher(ExcludeRules.from_json(snap.excludes)) if snap.excludes else None
        for diff in compare_trees(os.fsencode(restored), os.fsencode(root), unreadable, rules):
            result.differences.append(diff)
        result.entries = (
            outcome.files
            + outcome.dirs
            + outcome.symlinks
            + outcome.hardlinks
            + outcome.special
            + len(outcome.errors)
        )
    finally:
        remove_tree(workdir)
    after = repo.counts.as_dict()
    result.requests = {k: after[k] - before[k] for k in after}
    result.seconds = time.time() - started
    return result


def compare_trees(
    restored: bytes,
    source: bytes,
    skip: set[bytes] | frozenset[bytes] = frozenset(),
    excludes: ExcludeMatcher | None = None,
) -> Iterator[Difference]:
    """Every difference between the tree ``restored`` and the tree ``source``, in path
    order; relative paths in ``skip``, and what ``excludes`` leaves out of the source, are
    not compared."""
    links: _Links = ({}, {})
    # A stack of folder comparisons, not recursion: deep trees are compared like any other.
    stack = [_compare_dir(restored, source, b"", skip, links, excludes)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif isinstance(item, Difference):
            yield item
        else:
            stack.append(_compare_dir(*item, skip, links, excludes))


def _excluded(excludes: ExcludeMatcher, path: bytes, abspath: bytes, st: os.stat_result) -> bool:
    is_dir = stat.S_ISDIR(st.st_mode)
    return (
        excludes.excludes_path(path, is_dir)
        or (is_dir and excludes.excludes_dir_content(abspath))
        or (stat.S_ISREG(st.st_mode) and excludes.excludes_size(st.st_size))
    )


def _listing(path: bytes) -> dict[bytes, os.stat_result]:
    with os.scandir(path) as it:
        return {e.name: e.stat(follow_symlinks=False) for e in it}


def _kind(st: os.stat_result) -> str:
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISFIFO(st.st_mode):
        return "fifo"
    if stat.S_ISCHR(st.st_mode):
        return "chardev"
    if stat.S_ISBLK(st.st_mode):
        return "blockdev"
    return "other"


#: Per side, the first path met of each hard-linked inode.
_Links = tuple[dict[int, bytes], dict[int, bytes]]


def _metadata_differences(
    shown: str, path: bytes, a_path: bytes, a: os.stat_result, b_path: bytes, b: os.stat_result,
    links: _Links,
) -> Iterator[Difference]:  # fmt: skip
    """Differences beyond content, mode and mtime: owner, xattrs, hard links, holes."""
    kind = _kind(a)
    if kind in ("chardev", "blockdev") and a.st_rdev != b.st_rdev:
        yield Difference(shown, "device", f"snapshot {a.st_rdev:#x}, source {b.st_rdev:#x}")
    if AS_ROOT and (a.st_uid, a.st_gid) != (b.st_uid, b.st_gid):
        yield Difference(
            shown, "owner", f"snapshot {a.st_uid}:{a.st_gid}, source {b.st_uid}:{b.st_gid}"
        )
    if kind != "symlink":
        xa, xb = read_xattrs(a_path) or {}, read_xattrs(b_path) or {}
        if not AS_ROOT:
            xb = {k: v for k, v in xb.items() if k.startswith(UNPRIVILEGED_XATTRS)}
        if xa != xb:
            names = sorted(os.fsdecode(n) for n in set(xa) ^ set(xb)) or ["values differ"]
            yield Difference(shown, "xattrs", ", ".join(names))
    if kind == "file":
        leader_a = links[0].setdefault(a.st_ino, path) if a.st_nlink > 1 else path
        leader_b = links[1].setdefault(b.st_ino, path) if b.st_nlink > 1 else path
        if leader_a != leader_b:
            yield Difference(
                shown,
                "hardlink",
                f"snapshot: linked to {os.fsdecode(leader_a)}, "
                f"source: linked to {os.fsdecode(leader_b)}",
            )
        if is_sparse(b_path, b) and not is_sparse(a_path, a):
            yield Difference(shown, "sparse", "the source has holes, the restored file none")


def _compare_dir(
    restored: bytes,
    source: bytes,
    rel: bytes,
    skip: set[bytes] | frozenset[bytes],
    links: _Links,
    excludes: ExcludeMatcher | None = None,
) -> Iterator[Difference | tuple[bytes, bytes, bytes]]:
    """The differences in one folder, in name order, and (restored, source, relative path)
    for each subfolder to compare next."""
    ours = _listing(restored)
    theirs = {
        n: st
        for n, st in _listing(source).items()
        if _kind(st) != "other"
        and not (
            excludes is not None
            and _excluded(excludes, rel + b"/" + n if rel else n, os.path.join(source, n), st)
        )
    }
    for name in sorted(ours.keys() | theirs.keys()):
        path = rel + b"/" + name if rel else name
        if path in skip:
            continue
        shown = os.fsdecode(path)
        a, b = ours.get(name), theirs.get(name)
        if a is None:
            yield Difference(shown, "only-in-source", f"a {_kind(b)} not in the snapshot")  # type: ignore[arg-type]
            continue
        if b is None:
            yield Difference(shown, "only-in-snapshot", f"a {_kind(a)} missing from the source")
            continue
        ka, kb = _kind(a), _kind(b)
        if ka != kb:
            yield Difference(shown, "type", f"snapshot has a {ka}, source a {kb}")
            continue
        a_path, b_path = os.path.join(restored, name), os.path.join(source, name)
        if ka == "file":
            detail = _content_difference(a_path, a, b_path, b)
            if detail:
                yield Difference(shown, "content", detail)
        elif ka == "symlink":
            ta, tb = os.readlink(a_path), os.readlink(b_path)
            if ta != tb:
                yield Difference(
                    shown, "target", f"snapshot -> {os.fsdecode(ta)}, source -> {os.fsdecode(tb)}"
                )
        if ka != "symlink" and stat.S_IMODE(a.st_mode) != stat.S_IMODE(b.st_mode):
            yield Difference(
                shown,
                "mode",
                f"snapshot {stat.S_IMODE(a.st_mode):o}, source {stat.S_IMODE(b.st_mode):o}",
            )
        if a.st_mtime_ns != b.st_mtime_ns:
            yield Difference(
                shown, "mtime", f"snapshot {_when(a.st_mtime_ns)}, source {_when(b.st_mtime_ns)}"
            )
        yield from _metadata_differences(shown, path, a_path, a, b_path, b, links)
        if ka == "dir":
            yield a_path, b_path, path


def _content_difference(a_path: bytes, a: os.stat_result, b_path: bytes, b: os.stat_result) -> str:
    if a.st_size != b.st_size:
        return f"size: snapshot {a.st_size} bytes, source {b.st_size} bytes"
    try:
        with open(a_path, "rb") as fa, open(b_path, "rb") as fb:
            offset = 0
            while True:
                block_a, block_b = fa.read(_BLOCK), fb.read(_BLOCK)
                if block_a != block_b:
                    first = next(
                        (
                            i
                            for i, (x, y) in enumerate(zip(block_a, block_b, strict=False))
                            if x != y
                        ),
                        min(len(block_a), len(block_b)),
                    )
                    return f"bytes differ from offset {offset + first}"
                if not block_a:
                    return ""
                offset += len(block_a)
    except OSError as exc:
        return f"cannot compare: {exc.strerror or exc}"


def _when(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"
