"""Copying snapshots from one repository into another (an off-site copy).

The repositories may differ in everything: store, password, cipher, compression, chunk-id
key. Each chunk a snapshot needs is read from the source, checked against its id there,
hashed again with the target's chunk-id key, deduplicated against the target group's index,
transformed with the target's chain and packed; the file list is written anew with the
target's chunk ids. A copy keeps the snapshot's time, host, source, tags and its group id,
so the copies of one source group land in one target group and deduplicate against each
other.

A copy is written as a backup is (``.open`` record, packs, index, final record): killed at
any point, it leaves the target's snapshots intact, and the next run picks the incomplete
copy up, reusing every chunk it stored. Snapshots the target already holds (same
origin, see ``docs/format.md``) are skipped.

While it writes, a copy holds a shared lock on the target (:func:`acquire_copy`): a forget
or prune of the target refuses to start meanwhile, and a copy that starts while one runs
waits for it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..core.locks import RepositoryLock, acquire_copy
from ..core.progress import Progress, ProgressEvent
from ..core.repo import RepoCore
from ..core.writer import ChunkRef, ChunkWriter, WriteStats
from ..errors import CorruptionError, ExitCode, KvbackupError
from ..format.envelope import ObjectType
from ..format.filelist import FileListWriter
from ..format.index import GroupIndex
from ..format.layout import snapshot_key, snapshot_sort_key
from ..format.snapshots import COMPLETE, INCOMPLETE, Snapshot, new_snapshot_id, utc_time
from ..sources import FILE, Entry


class SameRepositoryError(KvbackupError):
    """The source and the target of a copy are one repository."""

    exit_code = ExitCode.USAGE


@dataclass
class CopyResult:
    """Which snapshots were copied (source id -> target id), which the target had already,
    and what was stored."""

    copied: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    stats: WriteStats = field(default_factory=WriteStats)
    files: int = 0
    bytes: int = 0
    total_files: int = 0
    total_bytes: int = 0
    requests_from: dict[str, int] = field(default_factory=dict)
    requests_to: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "copied": [{"from": a, "to": b} for a, b in self.copied],
            "skipped": self.skipped,
            "resumed": self.resumed,
            "stats": dataclasses.asdict(self.stats),
            "files": self.files,
            "bytes": self.bytes,
            "requests_from": self.requests_from,
            "requests_to": self.requests_to,
            "seconds": round(self.seconds, 3),
        }


def origin(snapshot: Snapshot, repository_id: str) -> tuple[str, str]:
    """Where ``snapshot`` (of the repository ``repository_id``) was first made."""
    if snapshot.original:
        return snapshot.original["repository"], snapshot.original["snapshot"]
    return repository_id, snapshot.id


class _Slot:
    """A source chunk on its way to the target: its target reference once handed over."""

    __slots__ = ("ref",)

    def __init__(self) -> None:
        self.ref: ChunkRef | None = None

    @property
    def id(self) -> bytes | None:
        return self.ref.id if self.ref is not None else None


def run_copy(
    source: RepoCore,
    target: RepoCore,
    snapshots: Iterable[Snapshot] | None = None,
    progress: Progress | None = None,
) -> CopyResult:
    """Copy ``snapshots`` (default: every complete one) of ``source`` into ``target``."""
    if source.config.id == target.config.id:
        raise SameRepositoryError(
            f"{target.location} is the repository being copied from ({source.location}): "
            "a copy needs two repositories"
        )
    started = time.time()
    lock = acquire_copy(target)  # before the target's snapshots are listed, as a backup
    try:
        result = _copy_all(source, target, snapshots, lock, progress)
    finally:
        lock.release()
    result.requests_from = source.counts.as_dict()
    result.requests_to = target.counts.as_dict()
    result.seconds = time.time() - started
    return result


def _copy_all(
    source: RepoCore,
    target: RepoCore,
    snapshots: Iterable[Snapshot] | None,
    lock: RepositoryLock,
    progress: Progress | None,
) -> CopyResult:
    result = CopyResult()
    chosen = list(snapshots) if snapshots is not None else source.snapshots()
    chosen = sorted((s for s in chosen if s.complete), key=lambda s: snapshot_sort_key(s.id))
    existing = target.snapshots()
    here = {origin(t, target.config.id): t for t in existing}
    due = [s for s in chosen if not _has_complete(here, origin(s, source.config.id))]
    result.total_files = sum(int(s.stats.get("files", 0)) for s in due)
    result.total_bytes = sum(int(s.stats.get("bytes", 0)) for s in due)
    maps: dict[str, dict[bytes, _Slot]] = {}  # per group: source chunk id -> target chunk
    for snap in chosen:
        first = origin(snap, source.config.id)
        if _has_complete(here, first):
            result.skipped.append(snap.id)
            continue
        stale = here.get(first)
        in_group = [t for t in existing if t.group == snap.group]
        copied = _copy_one(
            source,
            target,
            snap,
            stale,
            recover=any(not t.complete for t in in_group),
            known_group=bool(in_group),
            mapping=maps.setdefault(snap.group, {}),
            result=result,
            progress=progress,
            lock=lock,
        )
        existing.append(copied)
        here[first] = copied
        result.copied.append((snap.id, copied.id))
        if stale is not None:
            result.resumed.append(stale.id)
    return result


def _has_complete(here: dict[tuple[str, str], Snapshot], key: tuple[str, str]) -> bool:
    found = here.get(key)
    return found is not None and found.complete


def _allocate(target: RepoCore, record: Snapshot) -> Snapshot:
    """Write the copy's incomplete record under its id, or under a fresh id (same time,
    new random suffix) if that one is taken."""
    for n in range(1, 100):
        if n > 1:
            record.id = new_snapshot_id(record.time.timestamp())
        key = snapshot_key(record.id, final=False)
        blob = target.codec.encode(
            ObjectType.SNAPSHOT, key.encode(), json.dumps(record.to_json()).encode()
        )
        if target.store.put_if_absent(key, blob) or target.store.get(key) == blob:
            return record
    raise KvbackupError("cannot allocate a snapshot id in the target repository")


def _copy_one(
    source: RepoCore,
    target: RepoCore,
    snap: Snapshot,
    stale: Snapshot | None,
    *,
    recover: bool,
    known_group: bool,
    mapping: dict[bytes, _Slot],
    result: CopyResult,
    progress: Progress | None,
    lock: RepositoryLock,
) -> Snapshot:
    group = snap.group
    repository_id, snapshot_id = origin(snap, source.config.id)
    record = dataclasses.replace(
        snap,
        state=INCOMPLETE,
        filelist=[],
        original={"repository": repository_id, "snapshot": snapshot_id},
    )
    if stale is not None:
        record.id = stale.id  # its .open record is there: finish that copy
    else:
        record = _allocate(target, record)
    source_index, _ = source.load_index(group)
    if known_group:
        target_index, _ = target.load_index(group, recover=recover)
    else:
        target_index = GroupIndex()
    writer = ChunkWriter(
        target, group, target_index, target.codec, target.config.pack_size, stats=result.stats
    )
    filelist: FileListWriter[ChunkRef] = FileListWriter(
        lambda data: writer.add(ObjectType.METADATA, data)
    )
    pending: deque[tuple[Entry, list[_Slot]]] = deque()
    last_report = 0.0

    def settle() -> None:
        while pending:
            entry, slots = pending[0]
            ids = [slot.id for slot in slots]
            if any(i is None for i in ids):
                return
            pending.popleft()
            entry.chunks = [i for i in ids if i is not None]
            entry.line = None
            filelist.add(entry)
            if entry.kind == FILE:
                result.files += 1
                result.bytes += entry.size

    def wanted() -> Iterator[tuple[_Slot, bytes]]:
        """Queue the entries; yield the chunks not yet copied, for fetching."""
        nonlocal last_report
        for entry in source.iter_entries(snap, source_index):
            slots = []
            if entry.kind == FILE:
                for cid in entry.chunks:
                    slot = mapping.get(cid)
                    if slot is None:
                        slot = mapping[cid] = _Slot()
                        yield slot, cid
                    slots.append(slot)
            pending.append((entry, slots))
            settle()
            if progress and time.monotonic() - last_report > 0.2:
                last_report = time.monotonic()
                progress(_event(result, entry))

    try:
        for slot, data in source.fetch_chunks(group, source_index, wanted()):
            if isinstance(data, KvbackupError):
                raise CorruptionError(f"snapshot {snap.id}: {data}")
            slot.ref = writer.add(ObjectType.DATA, data)
            settle()
        writer.drain()
        settle()
        refs = filelist.close()
        writer.finish()
    except BaseException:
        writer.abort()
        # chunks handed over but never stored must be fetched again by a later copy
        for cid in [c for c, s in mapping.items() if s.id is None]:
            del mapping[cid]
        raise
    record.filelist = [ref.id.hex() for ref in refs if ref.id is not None]
    if len(record.filelist) != len(refs):
        raise KvbackupError("internal error: a file-list chunk has no id")
    record.state = COMPLETE
    record.end_time = snap.end_time or utc_time(time.time())
    lock.check()  # a lock gone stale no longer kept a prune from deleting what it uses
    target.put_object(
        snapshot_key(record.id, final=True),
        ObjectType.SNAPSHOT,
        json.dumps(record.to_json()).encode(),
    )
    return record


def _event(result: CopyResult, entry: Entry) -> ProgressEvent:
    return ProgressEvent(
        "copy",
        result.files,
        result.bytes,
        0,
        os.fsdecode(entry.path),
        total_files=result.total_files,
        total_bytes=result.total_bytes,
    )
