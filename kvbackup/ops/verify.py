"""Verify a repository: its structure, then its data, incrementally.

Structure: every snapshot record decodes; every index fragment decodes; every pack an index
names exists; every chunk a snapshot needs (its file list and its files' contents) is in
its group's index. Data: packs are read whole and every chunk in them is decoded and
hashed against its id; each pack's trailer must agree with the index.

What was read and found intact is recorded in a local cache (pack -> time verified), so a
later run reads only packs that are new or were checked longer ago than ``max_age``.
Damage is reported with every snapshot and file that it spoils. See ``docs/verify.md``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import Any

import platformdirs

from ..cachedir import make_private_dir
from ..core.progress import Progress, ProgressEvent
from ..core.repo import RepoCore
from ..errors import CorruptionError, KeyNotFoundError, KvbackupError
from ..format.index import BlobLocation, GroupIndex
from ..format.layout import GROUPS_PREFIX, INDEX, PACKS, pack_id_from_key, pack_key, parse_group_key
from ..format.snapshots import Snapshot
from ..sources import Entry

DEFAULT_MAX_AGE = 30 * 86400.0
CACHE_DIR_ENV = "KVBACKUP_CACHE_DIR"
_MAX_PACKS_IN_FLIGHT_BYTES = 256 * 1024 * 1024


def default_cache_dir() -> str:
    """Where verification records live: ``$KVBACKUP_CACHE_DIR`` or the user cache dir."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return os.path.join(env, "verify")
    return os.path.join(platformdirs.user_cache_dir("kvbackup", appauthor=False), "verify")


class VerifyCache:
    """``<cache dir>/<repository id>.json``: ``{"packs": {"<group>/<pack hex>": time}}``."""

    def __init__(self, directory: str | os.PathLike[str], repo_id: str):
        self.path = os.path.join(os.fspath(directory), f"{repo_id}.json")
        self.packs: dict[str, float] = {}

    def load(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            self.packs = {str(k): float(v) for k, v in data.get("packs", {}).items()}
        except (OSError, ValueError, AttributeError, TypeError):
            self.packs = {}  # no record, or an unreadable one: everything is due

    def save(self) -> None:
        """Write the record atomically; a cache that cannot be written is not an error."""
        with contextlib.suppress(OSError):
            directory = os.path.dirname(self.path)
            make_private_dir(directory)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".verify-")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump({"packs": self.packs}, fh, sort_keys=True)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise


@dataclass
class Problem:
    """One thing found wrong. ``kind`` is stable: ``snapshot``, ``index``, ``missing-pack``,
    ``unindexed-chunk``, ``damaged-chunk``, ``trailer``, ``file-list``."""

    kind: str
    message: str
    key: str = ""
    chunks: list[str] = field(default_factory=list)


@dataclass
class Affected:
    """A snapshot entry spoiled by damage (``path`` is ``None`` for the file list itself)."""

    snapshot: str
    path: str | None
    chunks: list[str]


@dataclass
class VerifyResult:
    """What verify checked and what it found."""

    snapshots: int = 0
    groups: int = 0
    index_fragments: int = 0
    packs: int = 0
    packs_read: int = 0
    packs_fresh: int = 0
    packs_not_selected: int = 0
    chunks_checked: int = 0
    bytes_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    damaged_chunks: dict[str, str] = field(default_factory=dict)
    affected: list[Affected] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["seconds"] = round(self.seconds, 3)
        return data


def run_verify(
    repo: RepoCore,
    *,
    max_age: float = DEFAULT_MAX_AGE,
    read_data_subset: float = 100.0,
    use_cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> VerifyResult:
    """Verify ``repo``; see :meth:`Repository.verify`."""
    with repo.bypassing_cache():  # the store's objects, not the local copies of them
        return _Verifier(repo, progress).run(max_age, read_data_subset, use_cache, cache_dir)


class _Group:
    def __init__(self, gid: str):
        self.gid = gid
        self.index = GroupIndex()
        self.tables: dict[bytes, list[BlobLocation]] = {}
        self.listed_packs: set[bytes] = set()
        self.index_keys: list[str] = []
        self.snapshots: list[Snapshot] = []
        self.damaged: dict[bytes, str] = {}
        self.unindexed: set[bytes] = set()


class _Verifier:
    def __init__(self, repo: RepoCore, progress: Progress | None):
        self.repo = repo
        self.progress = progress
        self.result = VerifyResult()
        self.groups: dict[str, _Group] = {}
        self._last_report = 0.0
        self.packs_to_read: int | None = None

    def group(self, gid: str) -> _Group:
        if gid not in self.groups:
            self.groups[gid] = _Group(gid)
        return self.groups[gid]

    def problem(
        self, kind: str, message: str, key: str = "", chunks: list[bytes] | None = None
    ) -> None:
        self.result.problems.append(Problem(kind, message, key, [c.hex() for c in chunks or ()]))

    def run(
        self,
        max_age: float,
        subset: float,
        use_cache: bool,
        cache_dir: str | os.PathLike[str] | None,
    ) -> VerifyResult:
        started = time.time()
        before = self.repo.counts.as_dict()
        self.list_groups()
        self.load_snapshots()
        self.load_indexes()
        self.check_packs_exist()
        self.walk_snapshots()
        self.explain_unindexed()
        cache = VerifyCache(cache_dir or default_cache_dir(), self.repo.config.id)
        if use_cache:
            cache.load()
        self.check_data(cache, max_age, subset, use_cache)
        cache.save()
        self.report_affected()
        after = self.repo.counts.as_dict()
        self.result.requests = {k: after[k] - before[k] for k in after}
        self.result.seconds = time.time() - started
        return self.result

    # ------------------------------------------------------------- structure

    def list_groups(self) -> None:
        for key in self.repo.store.list(GROUPS_PREFIX):
            obj = parse_group_key(key)
            if obj is not None and obj.kind == PACKS:
                pack_id = pack_id_from_key(key)
                if pack_id is not None:
                    self.group(obj.group).listed_packs.add(pack_id)
                    continue
            elif obj is not None and obj.kind == INDEX:
                self.group(obj.group).index_keys.append(key)
                continue
            self.result.warnings.append(f"{key}: not a kvbackup object (left alone)")

    def load_snapshots(self) -> None:
        def stray(key: str) -> None:
            self.result.warnings.append(f"{key}: not a snapshot record (left alone)")

        def unreadable(key: str, exc: KvbackupError) -> None:
            self.problem("snapshot", str(exc), key)

        for snap in self.repo.snapshots(on_error=unreadable, on_stray=stray):
            self.result.snapshots += 1
            self.group(snap.group).snapshots.append(snap)

    def load_indexes(self) -> None:
        jobs = [(g, key) for g in self.groups.values() for key in g.index_keys]

        def load(job: tuple[_Group, str]) -> list[tuple[bytes, list[BlobLocation]]] | None:
            _group, key = job
            try:
                return self.repo.read_index_fragment(key)
            except KeyNotFoundError:
                return []
            except KvbackupError as exc:
                self.problem("index", f"{exc} (its chunks count as not indexed)", key)
                return None

        for (group, _key), packs in zip(jobs, self.repo.map_parallel(load, jobs), strict=True):
            self.result.index_fragments += 1
            for pack_id, blobs in packs or ():
                group.tables.setdefault(pack_id, blobs)
                group.index.add_pack(pack_id, blobs)
        self.result.groups = len(self.groups)
        for group in self.groups.values():
            self.result.packs += len(group.tables)
            if not group.snapshots:
                self.result.warnings.append(
                    f"group {group.gid}: no snapshot uses it (left by an interrupted backup?)"
                )

    def check_packs_exist(self) -> None:
        for group in self.groups.values():
            for pack_id, blobs in group.tables.items():
                if pack_id in group.listed_packs:
                    continue
                key = pack_key(group.gid, pack_id)
                ids = [b.chunk_id for b in blobs]
                self.problem("missing-pack", f"{key}: pack missing ({len(ids)} chunks lost)", key)
                for cid in ids:
                    group.damaged.setdefault(cid, f"its pack {key} is missing")

    def walk_snapshots(self) -> None:
        """Every chunk a snapshot needs must be indexed."""
        for group in self.groups.values():
            for snap in group.snapshots:
                for cid in snap.filelist_ids():
                    if cid not in group.index:
                        group.unindexed.add(cid)
                try:
                    for entry in self.entries(group, snap):
                        for cid in entry.chunks:
                            if cid not in group.index:
                                group.unindexed.add(cid)
                except KvbackupError as exc:
                    self.problem("file-list", f"snapshot {snap.id}: {exc}")

    def entries(self, group: _Group, snap: Snapshot) -> Iterator[Entry]:
        """The snapshot's entries; a damaged file-list chunk is recorded, then raised."""

        def damaged(cid: bytes, error: KvbackupError) -> None:
            group.damaged.setdefault(cid, str(error))
            raise CorruptionError(f"file list chunk {cid.hex()}: {error}")

        return self.repo.iter_entries(snap, group.index, on_damage=damaged)

    def explain_unindexed(self) -> None:
        """Report chunks that are needed but not indexed; look for them in unindexed packs."""
        for group in self.groups.values():
            orphans = sorted(group.listed_packs - set(group.tables))
            found: dict[bytes, bytes] = {}
            if group.unindexed and orphans:

                def table(pack_id: bytes, gid: str = group.gid) -> list[BlobLocation]:
                    try:
                        return self.repo.read_pack_table(gid, pack_id)
                    except KvbackupError:
                        return []

                for pack_id, blobs in zip(
                    orphans, self.repo.map_parallel(table, orphans), strict=True
                ):
                    for blob in blobs:
                        found.setdefault(blob.chunk_id, pack_id)
            needed_orphans: set[bytes] = set()
            for cid in sorted(group.unindexed):
                where = found.get(cid)
                reason = f"not in the index of group {group.gid}"
                if where is not None:
                    needed_orphans.add(where)
                    reason += (
                        f"; it is in {pack_key(group.gid, where)}, which no index fragment "
                        "names (a lost index fragment?)"
                    )
                group.damaged.setdefault(cid, reason)
                self.problem("unindexed-chunk", f"chunk {cid.hex()}: {reason}", chunks=[cid])
            for pack_id in orphans:
                if pack_id not in needed_orphans:
                    self.result.warnings.append(
                        f"{pack_key(group.gid, pack_id)}: no index fragment names this pack "
                        "(an orphan of an interrupted backup: the next backup of its group "
                        "reuses it)"
                    )

    # ------------------------------------------------------------- data

    def check_data(
        self, cache: VerifyCache, max_age: float, subset: float, use_cache: bool
    ) -> None:
        now = time.time()
        candidates: list[tuple[float, float, _Group, bytes]] = []
        everything = [(g, p) for g in self.groups.values() for p in g.tables if p in g.listed_packs]
        for group, pack_id in everything:
            checked = cache.packs.get(f"{group.gid}/{pack_id.hex()}", 0.0) if use_cache else 0.0
            if use_cache and checked and now - checked < max_age:
                self.result.packs_fresh += 1
                continue
            candidates.append((checked, random.random(), group, pack_id))
        candidates.sort(key=lambda c: c[:2])  # never checked first, then the oldest
        if subset < 100:
            limit = math.ceil(len(everything) * subset / 100)
            self.result.packs_not_selected = max(0, len(candidates) - limit)
            candidates = candidates[:limit]
        self.packs_to_read = len(candidates)
        window = max(1, _MAX_PACKS_IN_FLIGHT_BYTES // max(1, self.repo.config.pack_size))
        window = max(2, min(window, self.repo.store.concurrency * 2))
        inflight: deque[tuple[_Group, bytes, Future[_PackReport]]] = deque()
        todo = iter(candidates)
        while True:
            while len(inflight) < window:
                item = next(todo, None)
                if item is None:
                    break
                _, _, group, pack_id = item
                inflight.append(
                    (group, pack_id, self.repo.pool.submit(self.check_pack, group, pack_id))
                )
            if not inflight:
                break
            group, pack_id, future = inflight.popleft()
            report = future.result()
            self.result.packs_read += 1
            self.result.chunks_checked += report.chunks
            self.result.bytes_checked += report.size
            for kind, message in report.problems:
                self.problem(kind, message, pack_key(group.gid, pack_id))
            for cid, reason in report.damaged:
                group.damaged.setdefault(cid, reason)
                self.problem("damaged-chunk", f"chunk {cid.hex()}: {reason}", chunks=[cid])
            name = f"{group.gid}/{pack_id.hex()}"
            if report.clean:
                cache.packs[name] = time.time()
            else:
                cache.packs.pop(name, None)
            self.report_progress(pack_key(group.gid, pack_id))
        listed = {f"{g.gid}/{p.hex()}" for g in self.groups.values() for p in g.listed_packs}
        cache.packs = {k: v for k, v in cache.packs.items() if k in listed}

    def report_progress(self, what: str) -> None:
        if self.progress and time.monotonic() - self._last_report > 0.2:
            self._last_report = time.monotonic()
            r = self.result
            self.progress(
                ProgressEvent(
                    "verify",
                    r.packs_read,
                    r.bytes_checked,
                    r.bytes_checked,
                    what,
                    total_files=self.packs_to_read,
                )
            )

    def check_pack(self, group: _Group, pack_id: bytes) -> _PackReport:
        key = pack_key(group.gid, pack_id)
        report = _PackReport()
        table = group.tables[pack_id]
        try:
            data = self.repo.store.get(key)
        except KeyNotFoundError:
            report.problems.append(("missing-pack", f"{key}: pack missing"))
            report.damaged = [(b.chunk_id, f"its pack {key} is missing") for b in table]
            return report
        report.size = len(data)
        report.problems.extend(self.check_trailer(group, pack_id, data, table))
        for loc in table:
            envelope = data[loc.offset : loc.offset + loc.length]
            report.chunks += 1
            try:
                self.repo.decode_chunk(loc, envelope, "")
            except KvbackupError as exc:
                reason = str(exc).removeprefix(": ")
                report.damaged.append((loc.chunk_id, f"damaged in {key}: {reason}"))
        return report

    def check_trailer(
        self, group: _Group, pack_id: bytes, data: bytes, table: list[BlobLocation]
    ) -> list[tuple[str, str]]:
        key = pack_key(group.gid, pack_id)
        try:
            trailer = self.repo.read_pack_table(group.gid, pack_id, data)
        except KvbackupError as exc:
            return [("trailer", f"{exc} (the index still locates its chunks)")]
        if sorted(map(_blob_tuple, trailer)) != sorted(map(_blob_tuple, table)):
            return [("trailer", f"{key}: the pack's trailer and the index disagree")]
        return []

    # ------------------------------------------------------------- report

    def report_affected(self) -> None:
        """Name every snapshot and file that uses a damaged chunk."""
        for group in self.groups.values():
            if not group.damaged:
                continue
            for cid, reason in group.damaged.items():
                self.result.damaged_chunks[cid.hex()] = reason
            for snap in group.snapshots:
                hit = [c for c in snap.filelist_ids() if c in group.damaged]
                if hit:
                    self.result.affected.append(Affected(snap.id, None, [c.hex() for c in hit]))
                    continue  # its files cannot be listed
                with contextlib.suppress(KvbackupError):
                    for entry in self.entries(group, snap):
                        hit = [c for c in entry.chunks if c in group.damaged]
                        if hit:
                            path = os.fsdecode(entry.path)
                            self.result.affected.append(
                                Affected(snap.id, path, [c.hex() for c in hit])
                            )


@dataclass
class _PackReport:
    size: int = 0
    chunks: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    damaged: list[tuple[bytes, str]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.problems or self.damaged)


def _blob_tuple(b: BlobLocation) -> tuple[bytes, int, int, int, int]:
    return (b.chunk_id, b.otype, b.offset, b.length, b.raw_length)
