"""Prune: free what no snapshot uses any more, under the exclusive lock.

1. A group no snapshot record uses is deleted whole (its prefix): no repacking.
2. In a group still used, packs no live chunk is in are deleted; packs partly used are
   repacked (their live chunks copied, as they are, into new packs) until the unused share
   of the group is at most ``max_unused`` percent; the group's index fragments are merged
   into new ones naming only what stays; then the old fragments, then the old packs, are
   deleted. Packs no fragment names (left by an interrupted prune) are deleted too.
   Damaged chunk copies that ``verify`` recorded are never chosen as a chunk's live copy,
   and a damage record goes once no pack it names is left.

Groups a running backup may be writing (a live backup lock of their host and source) and
groups with an incomplete snapshot (the next backup resumes it) are left alone. Killed at
any point, a prune leaves every kept snapshot whole: new packs are stored before the index
that names them, and the index before anything it replaces is deleted; what is left over
is orphans, which ``verify`` reports as such and the next prune deletes. See
``docs/lifecycle.md`` and ``docs/format.md``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.damage import decode_damage_record
from ..core.locks import RepositoryLock, acquire_exclusive
from ..core.progress import Progress
from ..errors import CorruptionError, KeyNotFoundError, KvbackupError
from ..format.envelope import ObjectType
from ..format.index import BlobLocation, GroupIndex, decode_fragment
from ..format.layout import DAMAGED, pack_id_from_key, pack_key
from ..format.packs import PackBuilder
from ..format.snapshots import Snapshot
from .pruneprogress import PruneProgress
from .verify import StructureRead, run_verify

if TYPE_CHECKING:
    from ..core.repo import RepoCore

DEFAULT_MAX_UNUSED = 5.0
#: Temporary objects of interrupted writes are removed once older than this: a write in
#: progress is never that old.
TEMPORARY_GRACE = 24 * 3600.0
FRAGMENT_MAX_PACKS = 4096

PackTable = tuple[bytes, list[BlobLocation]]


class DamagedRepositoryError(CorruptionError):
    """Prune refuses to work on a repository verify finds damaged (``--force`` overrides)."""


@dataclass
class PruneResult:
    """What prune freed and wrote (with ``dry_run``: would free and write)."""

    dry_run: bool = False
    groups_deleted: list[str] = field(default_factory=list)
    groups_skipped: dict[str, str] = field(default_factory=dict)
    packs_deleted: int = 0
    packs_repacked: int = 0
    packs_written: int = 0
    orphan_packs_deleted: int = 0
    chunks_repacked: int = 0
    fragments_deleted: int = 0
    fragments_written: int = 0
    objects_deleted: int = 0
    bytes_freed: int = 0  # pack bytes the index accounts for (orphans not counted)
    temporaries_deleted: int = 0  # left by interrupted writes (``.tmp-*`` files)
    damage_records_deleted: int = 0  # in groups still used: every pack they name is gone
    bytes_written: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        return data


@dataclass
class _Group:
    gid: str
    packs: set[bytes] = field(default_factory=set)  # listed
    index_keys: list[str] = field(default_factory=list)
    damage_keys: list[str] = field(default_factory=list)
    other_keys: list[str] = field(default_factory=list)
    #: Per damage record: the chunk copies ``(chunk id, pack id)`` it names.
    damaged: dict[str, set[tuple[bytes, bytes]]] = field(default_factory=dict)
    tables: dict[bytes, list[BlobLocation]] = field(default_factory=dict)
    index: GroupIndex = field(default_factory=GroupIndex)


@dataclass
class _Plan:
    group: _Group
    delete: set[bytes] = field(default_factory=set)  # indexed packs with nothing live
    repack: set[bytes] = field(default_factory=set)
    orphans: set[bytes] = field(default_factory=set)  # listed, named by no fragment
    live: set[bytes] = field(default_factory=set)  # chunk ids in use
    spent_records: list[str] = field(default_factory=list)  # damage records naming no pack left

    @property
    def rewrites_index(self) -> bool:
        return bool(self.delete or self.repack or len(self.group.index_keys) > 1)


def _objects_of(group: _Group) -> int:
    """The objects deleting ``group`` deletes (as listed)."""
    return len(group.packs) + len(group.index_keys) + len(group.damage_keys) + len(group.other_keys)


def _objects_of_plan(plan: _Plan) -> int:
    """The objects executing ``plan`` deletes or writes (new packs and fragments estimated)."""
    if not (plan.rewrites_index or plan.orphans):
        return len(plan.spent_records)
    gone = plan.delete | plan.repack
    kept = len(plan.group.tables) - len(gone)
    fragments = (kept + len(plan.repack) + FRAGMENT_MAX_PACKS - 1) // FRAGMENT_MAX_PACKS
    written = len(plan.repack) + fragments if plan.rewrites_index else 0
    deleted = len(gone | plan.orphans) + (len(plan.group.index_keys) if plan.rewrites_index else 0)
    return written + deleted + len(plan.spent_records)


def pack_size(blobs: Iterable[BlobLocation]) -> int:
    """The bytes of a pack's blobs (its trailer not counted)."""
    return sum(b.length for b in blobs)


def run_prune(
    repo: RepoCore,
    *,
    max_unused: float = DEFAULT_MAX_UNUSED,
    dry_run: bool = False,
    force: bool = False,
    lock: RepositoryLock | None = None,
    before: Sequence[Snapshot] | None = None,
    forgotten: Iterable[str] = (),
    progress: Progress | None = None,
) -> PruneResult:
    """Prune ``repo``; see the module docstring. ``lock`` is an exclusive lock already
    held (``forget --prune``), ``before`` the snapshots listed before it forgot any, and
    ``forgotten`` the ids a dry-run forget would have removed. ``progress`` is told how
    far it got (:mod:`kvbackup.ops.pruneprogress`)."""
    started = time.time()
    counts_before = repo.counts.as_dict()
    own = lock is None and not dry_run
    if own:
        lock = acquire_exclusive(repo, "prune")
    try:
        result = _Pruner(repo, lock, dry_run, PruneProgress(progress)).run(
            max_unused, force, before, set(forgotten)
        )
    finally:
        if own and lock is not None:
            lock.release()
    after = repo.counts.as_dict()
    result.requests = {k: after[k] - counts_before[k] for k in after}
    result.seconds = time.time() - started
    return result


class _Pruner:
    def __init__(
        self,
        repo: RepoCore,
        lock: RepositoryLock | None,
        dry_run: bool,
        progress: PruneProgress | None = None,
    ):
        self.repo = repo
        self.lock = lock
        self.result = PruneResult(dry_run=dry_run)
        self.progress = progress or PruneProgress(None)
        #: What the safety check read (``None`` with ``force``): reused, not read again.
        self.checked: StructureRead | None = None

    def check_lock(self) -> None:
        if self.lock is not None:
            self.lock.check()

    def run(
        self,
        max_unused: float,
        force: bool,
        before: Sequence[Snapshot] | None,
        forgotten: set[str],
    ) -> PruneResult:
        if not force:
            self.progress.phase("check")
            self.checked = StructureRead(skip=frozenset(forgotten))
            self.refuse_if_damaged(self.checked)
        earlier = list(before) if before is not None else self.repo.snapshots()
        groups = self.list_groups()  # before the snapshots: see docs/format.md, "Locks"
        snaps = [s for s in self.repo.snapshots() if s.id not in forgotten]
        busy_sources = {(b.host, b.source) for b in (self.lock.busy if self.lock else [])}
        busy = {s.group for s in [*earlier, *snaps] if (s.host, s.source) in busy_sources}
        used: dict[str, list[Snapshot]] = defaultdict(list)
        for s in snaps:
            used[s.group].append(s)
        dead = sorted(g for g in groups if g not in used and g not in busy)
        for gid in sorted(set(groups) & busy):
            self.result.groups_skipped[gid] = "a backup of its source is running"
        plans = []
        planned = sorted(set(groups) & set(used) - busy)
        self.progress.phase("plan", total_files=len(planned) + len(dead))
        for gid in planned:
            self.progress.advance(files=1, path=gid)
            if any(not s.complete for s in used[gid]):
                self.result.groups_skipped[gid] = (
                    "it has an incomplete snapshot (the next backup of its source resumes it)"
                )
                continue
            group = groups[gid]
            self.load_index(group)
            plan = self.plan(group, used[gid], max_unused)
            if plan is not None:
                plans.append(plan)
        for gid in dead:
            self.progress.advance(files=1, path=gid)
            self.load_index(groups[gid])
            self.result.bytes_freed += sum(pack_size(t) for t in groups[gid].tables.values())
            self.result.groups_deleted.append(gid)
            if self.result.dry_run:  # a real run counts these as it deletes them
                self.result.objects_deleted += _objects_of(groups[gid])
                self.result.fragments_deleted += len(groups[gid].index_keys)
                self.result.packs_deleted += len(groups[gid].packs)
        self.progress.done()
        if self.result.dry_run:
            for plan in plans:
                self.count_planned(plan)
        else:
            self.progress.phase(
                "prune",
                total_files=sum(_objects_of(groups[g]) for g in dead)
                + sum(_objects_of_plan(p) for p in plans),
                total_bytes=sum(pack_size(p.group.tables[k]) for p in plans for k in p.repack),
            )
            for gid in dead:
                self.delete_group(gid)
            for plan in plans:
                self.execute(plan)
            count, size = self.repo.store.remove_stale_temporaries(TEMPORARY_GRACE)
            self.result.temporaries_deleted = count
            self.result.bytes_freed += size
            self.progress.done()
        return self.result

    # ------------------------------------------------------------------ reading

    def refuse_if_damaged(self, keep: StructureRead) -> None:
        report = run_verify(self.repo, read_data_subset=0.0, keep=keep)
        if report.problems:
            first = report.problems[0]
            raise DamagedRepositoryError(
                f"prune refused: verify finds the repository damaged ({len(report.problems)} "
                f"problem(s); first: {first.message}); run `kvbackup verify`, repair what it "
                "reports, or prune anyway with --force"
            )

    def list_groups(self) -> dict[str, _Group]:
        groups: dict[str, _Group] = {}
        for key in self.repo.store.list("groups/"):
            parts = key.split("/")
            if len(parts) < 3:
                continue
            group = groups.setdefault(parts[1], _Group(parts[1]))
            pack_id = pack_id_from_key(key) if len(parts) == 4 and parts[2] == "packs" else None
            if pack_id is not None:
                group.packs.add(pack_id)
            elif len(parts) == 4 and parts[2] == "index":
                group.index_keys.append(key)
            elif len(parts) == 4 and parts[2] == DAMAGED:
                group.damage_keys.append(key)
            else:
                group.other_keys.append(key)
        return groups

    def load_index(self, group: _Group) -> None:
        """The group's index, without the chunk copies damage records name."""
        checked = self.checked
        if checked is not None and checked.index_keys.get(group.gid) == set(group.index_keys):
            group.tables = checked.tables[group.gid]  # the same write-once fragments
            group.index = checked.indexes[group.gid]
        else:
            self._load_fragments(group)
        self._load_damage_records(group)
        for copies in group.damaged.values():
            group.index.avoid(copies)  # another copy is chosen, or the chunk is missing

    def _load_damage_records(self, group: _Group) -> None:
        def load(key: str) -> set[tuple[bytes, bytes]] | None:
            try:
                return decode_damage_record(self.repo.get_object(key, ObjectType.DAMAGE), key)
            except KeyNotFoundError:
                return None
            except CorruptionError as exc:  # kept: whose copies it names is unknown
                self.repo.damage.note(f"{exc} (left out)")
                return None

        keys = sorted(group.damage_keys)
        for key, copies in zip(keys, self.repo.map_parallel(load, keys), strict=True):
            if copies is not None:
                group.damaged[key] = copies

    def _load_fragments(self, group: _Group) -> None:
        def load(key: str) -> list[PackTable]:
            try:
                return list(decode_fragment(self.repo.get_object(key, ObjectType.INDEX), key))
            except KeyNotFoundError:
                return []

        for packs in self.repo.map_parallel(load, sorted(group.index_keys)):
            for pack_id, blobs in packs:
                group.tables.setdefault(pack_id, blobs)
                group.index.add_pack(pack_id, blobs)

    def spent_records(self, group: _Group, gone: set[bytes]) -> list[str]:
        """The damage records of ``group`` naming no pack that stays (deleted now or before)."""
        stays = group.packs - gone
        return sorted(
            key
            for key, copies in group.damaged.items()
            if not any(pack_id in stays for _cid, pack_id in copies)
        )

    def live_chunks(self, group: _Group, snaps: Sequence[Snapshot]) -> set[bytes]:
        """The chunks ``snaps`` use: those the safety check saw them use, and those of
        snapshots it did not walk (committed since), read now."""
        checked = self.checked
        live = checked.used.setdefault(group.gid, set()) if checked else set()
        for snap in snaps:
            # Walked as it is now (not, say, as an incomplete record since completed)?
            if checked is not None and checked.walked.get(snap.id) == tuple(snap.filelist_ids()):
                continue
            live.update(snap.filelist_ids())
            for entry in self.repo.iter_entries(snap, group.index):
                live.update(entry.chunks)
        return live

    def plan(self, group: _Group, snaps: Sequence[Snapshot], max_unused: float) -> _Plan | None:
        """What to delete and repack in ``group``; ``None`` to leave it alone."""
        gone = [p for p in group.tables if p not in group.packs]
        if gone:  # only reachable with --force: a damaged group is left as it is
            self.result.groups_skipped[group.gid] = (
                f"{len(gone)} pack(s) its index names are missing"
            )
            return None
        try:
            live = self.live_chunks(group, snaps)
        except KvbackupError as exc:  # only reachable with --force: what is live is unknown
            self.result.groups_skipped[group.gid] = f"a file list cannot be read ({exc})"
            return None
        plan = _Plan(group, live=live)
        missing = [c for c in plan.live if c not in group.index]
        if missing:  # only reachable with --force: keep everything of such a group
            self.result.groups_skipped[group.gid] = (
                f"{len(missing)} chunk(s) its snapshots use are not indexed"
            )
            return None
        plan.orphans = group.packs - set(group.tables)
        used_bytes: dict[bytes, int] = defaultdict(int)
        for cid in plan.live:
            loc = group.index.get(cid)
            assert loc is not None
            used_bytes[loc.pack_id] += loc.length
        unused = 0
        partial = []
        for pack_id, blobs in group.tables.items():
            size = pack_size(blobs)
            if used_bytes[pack_id] == 0:
                plan.delete.add(pack_id)
            elif used_bytes[pack_id] < size:
                unused += size - used_bytes[pack_id]
                partial.append((size - used_bytes[pack_id], pack_id))
        # As restic: what stays unused may be at most max_unused percent of what stays.
        live_bytes = sum(used_bytes.values())
        allowed = live_bytes * max_unused / max(1e-9, 100.0 - max_unused)
        for waste, pack_id in sorted(partial, reverse=True):
            if unused <= allowed:
                break
            plan.repack.add(pack_id)
            unused -= waste
        for pack_id in plan.delete | plan.repack:
            self.result.bytes_freed += pack_size(group.tables[pack_id])
        self.result.packs_deleted += len(plan.delete)
        self.result.packs_repacked += len(plan.repack)
        plan.spent_records = self.spent_records(group, plan.delete | plan.repack | plan.orphans)
        self.result.damage_records_deleted += len(plan.spent_records)
        return plan

    # ------------------------------------------------------------------ writing

    def delete_group(self, gid: str) -> None:
        self.check_lock()
        keys = list(self.repo.store.list(f"groups/{gid}/"))
        # Index fragments first: a group cut short still names only packs that exist.
        self.delete_all([k for k in keys if k.split("/")[2] == "index"])
        self.delete_all([k for k in keys if k.split("/")[2] != "index"])
        self.result.objects_deleted += len(keys)
        self.result.fragments_deleted += sum(1 for k in keys if k.split("/")[2] == "index")
        self.result.packs_deleted += sum(1 for k in keys if k.split("/")[2] == "packs")

    def delete_all(self, keys: list[str]) -> None:
        """Delete ``keys``, several requests in flight."""

        def delete(key: str) -> None:
            self.repo.store.delete(key)
            self.progress.advance(files=1, path=key)

        self.repo.map_parallel(delete, keys)

    def count_planned(self, plan: _Plan) -> None:
        """Count what :meth:`execute` would delete (a dry run; a real run counts as it goes)."""
        if plan.rewrites_index:
            self.result.fragments_deleted += len(plan.group.index_keys)
            self.result.objects_deleted += len(plan.group.index_keys)
        if plan.rewrites_index or plan.orphans:
            self.result.objects_deleted += len(plan.delete | plan.repack | plan.orphans)
            self.result.orphan_packs_deleted += len(plan.orphans)
        self.result.objects_deleted += len(plan.spent_records)

    def execute(self, plan: _Plan) -> None:
        self.execute_deletions(plan)
        if plan.spent_records:  # after the packs they name: until then they still apply
            self.check_lock()
            self.delete_all(plan.spent_records)
            self.result.objects_deleted += len(plan.spent_records)

    def execute_deletions(self, plan: _Plan) -> None:
        group = plan.group
        if not (plan.rewrites_index or plan.orphans):
            return
        self.check_lock()
        new_tables = self.repack(plan) if plan.repack else []
        if plan.rewrites_index:
            gone = plan.delete | plan.repack
            keep = [(p, t) for p, t in group.tables.items() if p not in gone]
            self.check_lock()
            for start in range(0, max(1, len(keep) + len(new_tables)), FRAGMENT_MAX_PACKS):
                batch = (keep + new_tables)[start : start + FRAGMENT_MAX_PACKS]
                if batch:
                    self.repo.write_index_fragment(group.gid, batch)
                    self.result.fragments_written += 1
                    self.progress.advance(files=1)
            self.check_lock()
            self.delete_all(group.index_keys)
            self.result.fragments_deleted += len(group.index_keys)
            self.result.objects_deleted += len(group.index_keys)
        self.check_lock()
        self.delete_all(
            [pack_key(group.gid, p) for p in sorted(plan.delete | plan.repack | plan.orphans)]
        )
        self.result.objects_deleted += len(plan.delete | plan.repack | plan.orphans)
        self.result.orphan_packs_deleted += len(plan.orphans)

    def repack(self, plan: _Plan) -> list[PackTable]:
        """Copy the live chunks of the packs to repack into new packs, checking each."""
        group = plan.group
        written: list[PackTable] = []
        open_packs: dict[int, PackBuilder] = {}
        size_limit = self.repo.config.pack_size

        def store(builder: PackBuilder) -> None:
            key = pack_key(group.gid, builder.pack_id)
            data = builder.seal(self.repo.codec, key)
            self.repo.store.put(key, data)
            self.progress.advance(files=1, path=key)
            self.result.packs_written += 1
            self.result.bytes_written += len(data)
            written.append((builder.pack_id, builder.blobs))

        for pack_id in sorted(plan.repack):
            key = pack_key(group.gid, pack_id)
            data = self.repo.store.get(key)
            self.progress.advance(size=pack_size(group.tables[pack_id]), path=key)
            for loc in group.tables[pack_id]:
                chosen = group.index.get(loc.chunk_id)
                if loc.chunk_id not in plan.live or chosen is None or chosen.pack_id != pack_id:
                    continue
                envelope = data[loc.offset : loc.offset + loc.length]
                self._check_blob(key, loc, envelope)
                category = ObjectType.METADATA if loc.otype == ObjectType.METADATA else 0
                builder = open_packs.setdefault(category, PackBuilder())
                builder.add(loc.chunk_id, loc.otype, envelope, loc.raw_length)
                self.result.chunks_repacked += 1
                if builder.size >= size_limit:
                    store(open_packs.pop(category))
        for builder in open_packs.values():
            store(builder)
        return written

    def _check_blob(self, key: str, loc: BlobLocation, envelope: bytes) -> None:
        what = f"chunk {loc.chunk_id.hex()} in {key}"
        if len(envelope) != loc.length:
            raise CorruptionError(f"{what}: pack is shorter than the index says; nothing deleted")
        try:
            plain = self.repo.codec.decode(loc.otype, loc.chunk_id, envelope, what)
        except KvbackupError as exc:
            raise CorruptionError(f"{exc}; prune stopped, nothing deleted") from None
        if self.repo.hasher(plain) != loc.chunk_id:
            raise CorruptionError(f"{what}: content does not match its id; nothing deleted")
