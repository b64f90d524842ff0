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
import hashlib
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
from ..core.damage import load_damage_records, write_damage_record
from ..core.progress import Progress, ProgressEvent
from ..core.repo import RepoCore
from ..display import display_name
from ..errors import CorruptionError, KeyNotFoundError, KvbackupError
from ..format.index import BlobLocation, GroupIndex
from ..format.layout import (
    DAMAGED,
    GROUPS_PREFIX,
    INDEX,
    OPEN_SUFFIX,
    PACKS,
    SNAPSHOTS_PREFIX,
    pack_id_from_key,
    pack_key,
    parse_group_key,
    snapshot_key,
)
from ..format.packs import TRAILER_LEN
from ..format.snapshots import Snapshot
from ..sources import FILE, Entry, check_relative_path

DEFAULT_MAX_AGE = 30 * 86400.0
CACHE_DIR_ENV = "KVBACKUP_CACHE_DIR"
_MAX_PACKS_IN_FLIGHT_BYTES = 256 * 1024 * 1024
_PACK_KINDS = ("pack-size", "trailer")


def default_cache_dir() -> str:
    """Where verification records live: ``$KVBACKUP_CACHE_DIR`` or the user cache dir."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return os.path.join(env, "verify")
    return os.path.join(platformdirs.user_cache_dir("kvbackup", appauthor=False), "verify")


class VerifyCache:
    """``<cache dir>/<repository id>-<location hash>.json``:
    ``{"location": ..., "packs": {"<group>/<pack hex>": [time, size]}}``.

    Keyed by the store's location as well as the repository id: a copy or mirror of a
    repository has the same id, but its packs have never been read. A pack counts as
    verified only while the store lists it with the size it had when it was read.
    """

    def __init__(self, directory: str | os.PathLike[str], repo_id: str, location: str = ""):
        digest = hashlib.sha256(location.encode()).hexdigest()[:16]
        self.path = os.path.join(os.fspath(directory), f"{repo_id}-{digest}.json")
        self.location = location
        self.packs: dict[str, tuple[float, int]] = {}

    def load(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            if data.get("location") != self.location:
                raise ValueError("another location's record")
            self.packs = {
                str(k): (float(v[0]), int(v[1])) for k, v in data.get("packs", {}).items()
            }
        except (OSError, ValueError, AttributeError, TypeError, IndexError, KeyError):
            self.packs = {}  # no record, or an unreadable one: everything is due

    def verified_at(self, name: str, size: int | None) -> float:
        """When pack ``name`` was last found intact at ``size`` bytes (0: never)."""
        checked, checked_size = self.packs.get(name, (0.0, -1))
        return checked if size is None or size == checked_size else 0.0

    def save(self) -> None:
        """Write the record atomically; a cache that cannot be written is not an error."""
        with contextlib.suppress(OSError):
            directory = os.path.dirname(self.path)
            make_private_dir(directory)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".verify-")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump({"location": self.location, "packs": self.packs}, fh, sort_keys=True)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise


@dataclass
class Problem:
    """One thing found wrong. ``kind`` is stable: ``snapshot``, ``index``, ``missing-pack``,
    ``unindexed-chunk``, ``damaged-chunk``, ``trailer``, ``file-list``, ``pack-size``,
    ``entry``."""

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
    temporary: list[dict[str, Any]] = field(default_factory=list)
    damage_recorded: str | None = None
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


@dataclass
class StructureRead:
    """What the structural check read, kept for a caller that needs it too: prune, which
    would otherwise read every index fragment and every kept file list a second time.

    ``used`` holds, per group, the chunks (file lists and contents) of the snapshots walked
    whole (``walked``: id -> the file list walked), leaving out those named in ``skip`` (a
    dry-run forget's). Index fragments are write-once, so a group's ``indexes`` stay valid
    while its fragments are still exactly ``index_keys``.
    """

    skip: frozenset[str] = frozenset()
    walked: dict[str, tuple[bytes, ...]] = field(default_factory=dict)
    used: dict[str, set[bytes]] = field(default_factory=dict)
    index_keys: dict[str, frozenset[str]] = field(default_factory=dict)
    tables: dict[str, dict[bytes, list[BlobLocation]]] = field(default_factory=dict)
    indexes: dict[str, GroupIndex] = field(default_factory=dict)


def run_verify(
    repo: RepoCore,
    *,
    max_age: float = DEFAULT_MAX_AGE,
    read_data_subset: float = 100.0,
    use_cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    keep: StructureRead | None = None,
) -> VerifyResult:
    """Verify ``repo``; see :meth:`Repository.verify`. ``keep`` is filled in with what the
    structural check read (see :class:`StructureRead`)."""
    with repo.bypassing_cache():  # the store's objects, not the local copies of them
        verifier = _Verifier(repo, progress, keep)
        return verifier.run(max_age, read_data_subset, use_cache, cache_dir)


class _Group:
    def __init__(self, gid: str):
        self.gid = gid
        self.index = GroupIndex()
        self.tables: dict[bytes, list[BlobLocation]] = {}
        self.listed_packs: set[bytes] = set()
        self.pack_sizes: dict[bytes, int | None] = {}
        self.index_keys: list[str] = []
        self.damage_keys: list[str] = []
        self.recorded: set[tuple[bytes, bytes]] = set()  # damaged copies already recorded
        self.bad_copies: dict[tuple[bytes, bytes], str] = {}  # found damaged in this run
        self.snapshots: list[Snapshot] = []
        self.damaged: dict[bytes, str] = {}
        self.unindexed: set[bytes] = set()


class _Verifier:
    def __init__(self, repo: RepoCore, progress: Progress | None, keep: StructureRead | None):
        self.repo = repo
        self.progress = progress
        self.keep = keep
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
        self.list_temporary()
        self.load_snapshots()
        self.load_indexes()
        self.check_packs_exist()
        self.check_pack_sizes()
        self.walk_snapshots()
        self.keep_structure()
        self.explain_unindexed()
        cache = VerifyCache(
            cache_dir or default_cache_dir(), self.repo.config.id, self.repo.location
        )
        if use_cache:
            cache.load()
        self.check_data(cache, max_age, subset, use_cache)
        cache.save()
        self.settle_damaged_copies()
        self.report_affected()
        after = self.repo.counts.as_dict()
        self.result.requests = {k: after[k] - before[k] for k in after}
        self.result.seconds = time.time() - started
        return self.result

    # ------------------------------------------------------------- structure

    def list_groups(self) -> None:
        for key, size in self.repo.store.list_sizes(GROUPS_PREFIX):
            obj = parse_group_key(key)
            if obj is not None and obj.kind == PACKS:
                pack_id = pack_id_from_key(key)
                if pack_id is not None:
                    self.group(obj.group).listed_packs.add(pack_id)
                    self.group(obj.group).pack_sizes[pack_id] = size
                    continue
            elif obj is not None and obj.kind == INDEX:
                self.group(obj.group).index_keys.append(key)
                continue
            elif obj is not None and obj.kind == DAMAGED:
                self.group(obj.group).damage_keys.append(key)
                continue
            self.result.warnings.append(f"{key}: not a kvbackup object (left alone)")

    def list_temporary(self) -> None:
        """Temporary objects left by writes that never finished (killed backups)."""
        now = time.time()
        for name, size, mtime in self.repo.store.list_temporary():
            self.result.temporary.append(
                {"name": name, "size": size, "age_seconds": round(max(0.0, now - mtime))}
            )
        if self.result.temporary:
            total = sum(t["size"] for t in self.result.temporary)
            self.result.warnings.append(
                f"{len(self.result.temporary)} temporary objects ({total} bytes) left by "
                "interrupted writes (prune removes them)"
            )

    def load_snapshots(self) -> None:
        def stray(key: str) -> None:
            self.result.warnings.append(f"{key}: not a snapshot record (left alone)")

        def unreadable(key: str, exc: KvbackupError) -> None:
            self.problem("snapshot", str(exc), key)

        snaps = self.repo.snapshots(on_error=unreadable, on_stray=stray)
        for snap in snaps:
            self.result.snapshots += 1
            self.group(snap.group).snapshots.append(snap)
        self.check_open_records({s.id for s in snaps if s.complete})

    def check_open_records(self, complete: set[str]) -> None:
        """The ``.open`` record of a complete snapshot is read too: restore falls back to
        it if the final record is damaged, so a damaged one is a problem."""
        keys = [snapshot_key(i, final=False) for i in sorted(complete)]
        listed = set(self.repo.store.list(SNAPSHOTS_PREFIX))

        def load(key: str) -> None:
            try:
                self.repo.load_snapshot(key.split("/", 1)[1].removesuffix(OPEN_SUFFIX), False)
            except KeyNotFoundError:
                pass
            except KvbackupError as exc:
                self.problem("snapshot", str(exc), key)

        self.repo.map_parallel(load, [k for k in keys if k in listed])

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

        for group in self.groups.values():
            if group.damage_keys:
                group.recorded = load_damage_records(self.repo, group.gid, group.damage_keys)
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
            elsewhere: set[bytes] = set()
            for pack_id, blobs in group.tables.items():
                if pack_id in group.listed_packs:
                    elsewhere.update(b.chunk_id for b in blobs)
            for pack_id, blobs in group.tables.items():
                if pack_id in group.listed_packs:
                    continue
                key = pack_key(group.gid, pack_id)
                lost = [b.chunk_id for b in blobs if b.chunk_id not in elsewhere]
                if not lost:
                    self.result.warnings.append(
                        f"{key}: pack missing, but every chunk in it is stored again elsewhere"
                    )
                    continue
                self.problem("missing-pack", f"{key}: pack missing ({len(lost)} chunks lost)", key)
                for cid in lost:
                    group.damaged.setdefault(cid, f"its pack {key} is missing")

    def check_pack_sizes(self) -> None:
        """Each pack the store lists must be at least as long as the index says it is."""
        for group in self.groups.values():
            for pack_id, blobs in group.tables.items():
                size = group.pack_sizes.get(pack_id)
                if size is None or pack_id not in group.listed_packs or not blobs:
                    continue
                needed = max(b.offset + b.length for b in blobs) + TRAILER_LEN.size
                if size < needed:
                    key = pack_key(group.gid, pack_id)
                    self.problem(
                        "pack-size",
                        f"{key}: the store lists {size} bytes, the index needs at least {needed}",
                        key,
                    )
                    for b in blobs:
                        if b.offset + b.length > size:
                            reason = f"{key} is truncated ({size} bytes listed)"
                            group.bad_copies.setdefault((b.chunk_id, pack_id), reason)

    def walk_snapshots(self) -> None:
        """Every chunk a snapshot needs must be indexed (and is noted as used in
        :attr:`keep`, if asked)."""
        for group in self.groups.values():
            for snap in group.snapshots:
                gather = self.keep is not None and snap.id not in self.keep.skip
                used = self.keep.used.setdefault(group.gid, set()) if self.keep else set()
                for cid in snap.filelist_ids():
                    if cid not in group.index:
                        group.unindexed.add(cid)
                try:
                    for entry in self.entries(group, snap):
                        for cid in entry.chunks:
                            if cid not in group.index:
                                group.unindexed.add(cid)
                        if gather:
                            used.update(entry.chunks)
                        fault = _entry_fault(entry, group.index)
                        if fault:
                            shown = display_name(entry.path)
                            self.problem("entry", f"snapshot {snap.id}: {shown}: {fault}")
                except KvbackupError as exc:
                    self.problem("file-list", f"snapshot {snap.id}: {exc}")
                    continue
                if gather and self.keep is not None:
                    used.update(snap.filelist_ids())
                    self.keep.walked[snap.id] = tuple(snap.filelist_ids())

    def keep_structure(self) -> None:
        """Hand each group's index, as read, to :attr:`keep`."""
        if self.keep is None:
            return
        for group in self.groups.values():
            self.keep.index_keys[group.gid] = frozenset(group.index_keys)
            self.keep.tables[group.gid] = group.tables
            self.keep.indexes[group.gid] = group.index

    def entries(self, group: _Group, snap: Snapshot, first_walk: bool = True) -> Iterator[Entry]:
        """The snapshot's entries; a damaged file-list chunk is recorded, then raised. A
        malformed entry is reported (on the ``first_walk`` only) and left out."""

        def damaged(cid: bytes, error: KvbackupError) -> None:
            if not cid:  # a malformed entry, named in ``error``: reading goes on after it
                if first_walk:
                    self.problem("entry", str(error))
                return
            group.damaged.setdefault(cid, str(error))
            raise CorruptionError(f"file list chunk {cid.hex()}: {error}")

        return self.repo.iter_entries(snap, group.index, on_damage=damaged, strict=True)

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
            name = f"{group.gid}/{pack_id.hex()}"
            checked = cache.verified_at(name, group.pack_sizes.get(pack_id)) if use_cache else 0.0
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
                group.bad_copies.setdefault((cid, pack_id), reason)
            name = f"{group.gid}/{pack_id.hex()}"
            if report.clean:
                cache.packs[name] = (time.time(), report.size)
            else:
                cache.packs.pop(name, None)
            self.report_progress(pack_key(group.gid, pack_id))
        listed = {f"{g.gid}/{p.hex()}" for g in self.groups.values() for p in g.listed_packs}
        cache.packs = {k: v for k, v in cache.packs.items() if k in listed}

    def settle_damaged_copies(self) -> None:
        """A damaged copy is damage unless the chunk has an intact copy in another pack
        (a backup stored it again); new damaged copies are recorded in the repository, so
        that every later command avoids them and the next backup stores the chunks again."""
        for group in self.groups.values():
            missing = {
                (b.chunk_id, p)
                for p, blobs in group.tables.items()
                if p not in group.listed_packs
                for b in blobs
            }
            copies: dict[bytes, set[bytes]] = {}
            for pack_id, blobs in group.tables.items():
                if pack_id in group.listed_packs:
                    for b in blobs:
                        copies.setdefault(b.chunk_id, set()).add(pack_id)
            bad = set(group.bad_copies) | missing | group.recorded
            for (cid, _pack_id), reason in sorted(group.bad_copies.items()):
                good = [p for p in copies.get(cid, ()) if (cid, p) not in bad]
                if good:
                    self.result.warnings.append(
                        f"chunk {cid.hex()}: {reason}; an intact copy is in "
                        f"{pack_key(group.gid, good[0])} (used instead)"
                    )
                    continue
                group.damaged.setdefault(cid, reason)
                self.problem("damaged-chunk", f"chunk {cid.hex()}: {reason}", chunks=[cid])
            self.excuse_superseded_packs(group, copies, bad)
            new = (set(group.bad_copies) | missing) - group.recorded
            if new:
                try:
                    self.result.damage_recorded = write_damage_record(self.repo, group.gid, new)
                except KvbackupError as exc:
                    self.result.warnings.append(f"could not record the damage: {exc}")

    def excuse_superseded_packs(
        self, group: _Group, copies: dict[bytes, set[bytes]], bad: set[tuple[bytes, bytes]]
    ) -> None:
        """A damaged pack (size, trailer) whose damaged chunks were stored again, so that
        every chunk in it has an intact copy, spoils nothing: a warning, not a problem."""
        kept = []
        for problem in self.result.problems:
            pack_id = pack_id_from_key(problem.key) if problem.kind in _PACK_KINDS else None
            blobs = group.tables.get(pack_id) if pack_id is not None else None
            if (
                pack_id is not None
                and blobs is not None
                and problem.key == pack_key(group.gid, pack_id)
                and any((b.chunk_id, pack_id) in bad for b in blobs)  # healed, not just cut
                and all(any((b.chunk_id, p) not in bad for p in copies[b.chunk_id]) for b in blobs)
            ):
                self.result.warnings.append(
                    f"{problem.message}; every chunk in it has an intact copy (spoils nothing)"
                )
                continue
            kept.append(problem)
        self.result.problems = kept

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
            report.problems.append(("missing-pack", f"{key}: pack missing"))  # since listed
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
                    for entry in self.entries(group, snap, first_walk=False):
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


def _entry_fault(entry: Entry, index: GroupIndex) -> str | None:
    """What restore would find wrong with ``entry`` beyond its fields (which reading the
    file list checks, :func:`~kvbackup.format.filelist.validate_entry`), or ``None``: a
    name that would escape the target, or a file whose chunks do not add up to its size.
    Chunks the index lacks are not judged here (they are reported as not indexed)."""
    try:
        check_relative_path(entry.path)
    except ValueError as exc:
        return f"unsafe name ({exc})"
    if entry.kind != FILE:
        return None
    total = 0
    for cid in entry.chunks:
        loc = index.get(cid)
        if loc is None:
            return None
        total += loc.raw_length
    if total != entry.size:
        return (
            f"the file list says {entry.size} bytes, its {len(entry.chunks)} chunks hold "
            f"{total} bytes"
        )
    return None
