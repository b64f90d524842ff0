"""One backup run: scan the source, skip what is unchanged, store the rest, commit.

Order of writes: the incomplete snapshot record, then packs, then index fragments naming
stored packs, then the complete snapshot record (the commit point). A run killed at any
moment leaves every earlier snapshot intact, and the next run reuses what it stored.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from ..core.consolidate import MERGE_AT, merge_fragments
from ..core.locks import RepositoryLock, acquire_backup
from ..core.progress import Progress, ProgressEvent
from ..core.repo import RepoCore
from ..core.writer import ChunkRef, ChunkWriter, WriteStats
from ..errors import KvbackupError, SourceError
from ..excludes import ExcludeMatcher, ExcludeRules
from ..format.chunker import Chunker, read_small
from ..format.envelope import ObjectType
from ..format.filelist import FileListWriter, match_file_line
from ..format.index import GroupIndex
from ..format.layout import snapshot_key
from ..format.parentlist import ParentLine, ParentList
from ..format.snapshots import COMPLETE, Snapshot, new_snapshot_id, utc_time
from ..sources import DIR, FILE, KINDS, SYMLINK, Entry, Source, check_relative_path

MAX_SKIPPED_RECORDED = 1000


@dataclass
class BackupStats(WriteStats):
    """What a backup did; the chunk and pack counts are kept by its :class:`ChunkWriter`."""

    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    files_read: int = 0
    bytes_read: int = 0
    files_unchanged: int = 0
    skipped: int = 0
    excluded: int = 0
    special: int = 0
    hardlinks: int = 0
    resumed_packs: int = 0
    resumed_chunks: int = 0


@dataclass
class BackupResult:
    """The committed snapshot, what the run did, and what it could not read."""

    snapshot: Snapshot
    stats: BackupStats
    skipped: list[tuple[str, str]] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: A distributed run's shards, workers (bytes, chunks, requests each) and duplicates.
    distributed: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False
    #: With ``dry_run``: the files that would be read (at most 10000 listed).
    would_read: list[str] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        return bool(self.skipped)

    def as_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot.id,
            "group": self.snapshot.group,
            "parent": self.snapshot.parent,
            "full": self.snapshot.full,
            "stats": asdict(self.stats),
            "skipped": [{"path": p, "error": e} for p, e in self.skipped],
            "requests": self.requests,
            "messages": self.messages,
            "warnings": self.warnings,
            "dry_run": self.dry_run,
            "would_read": self.would_read,
            "seconds": round(self.seconds, 3),
        } | ({"distributed": self.distributed} if self.distributed is not None else {})


def make_source(
    repo: RepoCore, spec: Any, source_type: str | None, options: Mapping[str, str] | None
) -> tuple[Source, str]:
    return repo.registry.make_source(spec, source_type, options)


def _display(path: bytes) -> str:
    return os.fsdecode(path)


def _open_snapshot(repo: RepoCore, snap: Snapshot) -> None:
    """Write the incomplete record. Its id is unique by construction (a random suffix), so
    no conditional write is needed, and none is relied on (many stores have none)."""
    repo.put_object(
        snapshot_key(snap.id, final=False), ObjectType.SNAPSHOT, json.dumps(snap.to_json()).encode()
    )


def _checked(
    entries: Iterator[Entry], on_error: Callable[[bytes, Exception], None]
) -> Iterator[Entry]:
    """Entries whose path and kind are sound; others are reported and left out."""
    for entry in entries:
        try:
            check_relative_path(entry.path)
            if entry.kind not in KINDS:
                raise ValueError(f"unknown entry kind {entry.kind!r}")
        except ValueError as exc:
            on_error(entry.path, exc)
            continue
        yield entry


def _same_line(entry: Entry, previous: Entry | None) -> bytes | None:
    """The parent's file-list line, if it describes ``entry`` exactly (so it is reused)."""
    if (
        previous is None
        or previous.line is None
        or previous.kind != entry.kind
        or previous.mode != entry.mode
        or previous.mtime_ns != entry.mtime_ns
        or previous.uid != entry.uid
        or previous.gid != entry.gid
        or previous.target != entry.target
        or previous.user != entry.user
        or previous.group != entry.group
        or previous.xattrs != entry.xattrs
        or previous.rdev != entry.rdev
    ):
        return None
    if entry.kind == FILE and (
        previous.size != entry.size
        or previous.ctime_ns != entry.ctime_ns
        or previous.inode != entry.inode
        or previous.chunks != entry.chunks
        or previous.hardlink != entry.hardlink
        or previous.nlink != entry.nlink
        or previous.sparse != entry.sparse
    ):
        return None
    return previous.line


def _carried_over(
    entry: Entry, found: ParentLine, parents: ParentList, index: GroupIndex
) -> tuple[list[bytes], bytes | None] | None:
    """The chunks of the file ``entry`` if the parent's line ``found`` says it is unchanged,
    with that line if it can be written again as it is; ``None`` if the file must be read."""
    chunks = match_file_line(entry, found.line)  # the common case: nothing decoded
    if chunks is not None and index.has_all(chunks):
        return chunks, found.line
    previous = parents.entry(found, entry)  # decoded and checked
    if not _unchanged(entry, previous, index):
        return None
    assert previous is not None
    entry.chunks = previous.chunks
    return previous.chunks, _same_line(entry, previous)


def _unchanged(entry: Entry, parent: Entry | None, index: GroupIndex) -> bool:
    return (
        parent is not None
        and parent.kind == FILE
        and parent.size == entry.size
        and parent.mtime_ns == entry.mtime_ns
        and parent.ctime_ns == entry.ctime_ns
        and parent.inode == entry.inode
        and all(c in index for c in parent.chunks)
    )


def run_backup(
    repo: RepoCore,
    spec: Any,
    *,
    full: bool = False,
    rehash: bool = False,
    source_type: str | None = None,
    source_options: Mapping[str, str] | None = None,
    compression: str | None = None,
    progress: Progress | None = None,
    host: str | None = None,
    tags: list[str] | None = None,
    excludes: ExcludeRules | None = None,
    dry_run: bool = False,
) -> BackupResult:
    """Back up ``spec`` into ``repo``; see :meth:`Repository.backup`."""
    started = time.time()
    source, source_kind = make_source(repo, spec, source_type, source_options)
    lock = None
    try:
        # Announce the backup before choosing its group (waits while a forget or prune
        # runs): a prune leaves this source's groups alone until it is released.
        lock = acquire_backup(repo, host or socket.gethostname(), source.identity)
        return _run(
            repo,
            source,
            source_kind,
            started,
            full=full,
            rehash=rehash,
            compression=compression,
            progress=progress,
            host=host,
            tags=tags,
            lock=lock,
            excludes=excludes,
            dry_run=dry_run,
        )
    finally:
        if lock is not None:
            lock.release()
        source.close()


def _run(
    repo: RepoCore,
    source: Source,
    source_kind: str,
    started: float,
    *,
    full: bool,
    rehash: bool,
    compression: str | None,
    progress: Progress | None,
    host: str | None,
    tags: list[str] | None,
    lock: RepositoryLock,
    excludes: ExcludeRules | None = None,
    dry_run: bool = False,
) -> BackupResult:
    # Checked first: a bad --compression must not leave an incomplete snapshot behind.
    codec = repo.make_codec(_chain_with(repo, compression)) if compression else repo.codec
    matcher = ExcludeMatcher(excludes) if excludes is not None and not excludes.empty else None
    if dry_run:
        planned = plan_snapshot(repo, source, source_kind, started, full, host, tags, excludes)
        return _dry_run(repo, source, planned, rehash, matcher, started)
    begun = begin_snapshot(repo, source, source_kind, started, full, host, tags, excludes)
    snap, parent, resumes, index = begun.snap, begun.parent, begun.resumes, begun.index
    stats = BackupStats(resumed_packs=begun.resumed_packs)
    writer = ChunkWriter(repo, snap.group, index, codec, repo.config.pack_size, stats=stats)
    skipped: list[tuple[str, str]] = []

    def on_error(path: bytes, exc: Exception) -> None:
        skipped.append((_display(path), _describe_error(exc)))

    parents = None
    if parent is not None and source.ordered and not rehash:
        parents = repo.parent_list(parent, index)
    # Hard links: the chunks of the first entry of each linked inode, for the others.
    leaders: dict[bytes, tuple[Entry, list[ChunkRef] | None]] = {}
    chunker = Chunker(repo.config.chunker)
    filelist: FileListWriter[ChunkRef] = FileListWriter(
        lambda data: writer.add(ObjectType.METADATA, data)
    )
    # Entries wait here, in order, until the ids of the chunks they were given are known
    # (and, for a small file read by the writer's workers, whether it could be read).
    waiting: deque[tuple[Entry, list[ChunkRef] | None, bytes | None, bool]] = deque()
    small_file = chunker.params.small_file
    # Small files are read by the writer's workers, when the source allows it, so that this
    # thread goes on scanning while they are read, hashed and compressed.
    read_on_workers = source.threaded_reads

    def settle() -> None:
        while waiting:
            entry, refs, line, deferred = waiting[0]
            if refs:
                if not refs[-1].done:  # jobs finish in order: the last one tells
                    return
                if deferred:
                    refs = _settle_read(entry, refs[0], source, chunker, writer, stats, on_error)
                    if refs is None:  # unreadable: left out, like a file read here
                        waiting.popleft()
                        continue
                    if refs and not refs[-1].done:  # read again here: wait for its chunks
                        waiting[0] = (entry, refs, line, False)
                        return
                entry.chunks = [ref.id for ref in refs if ref.id is not None]
            waiting.popleft()
            filelist.add(entry, line)

    last_report = 0.0
    try:
        for entry in _scan(source, matcher, on_error):
            refs: list[ChunkRef] | None = None
            line: bytes | None = None
            deferred = False
            # every entry moves the cursor on: its path is paired by bytes, not decoded
            found = parents.find(entry) if parents is not None else None
            if entry.kind == FILE:
                leader = leaders.get(entry.hardlink) if entry.hardlink is not None else None
                if leader is not None:
                    entry.size, entry.chunks = leader[0].size, leader[0].chunks
                    refs = leader[1]
                    stats.hardlinks += 1
                else:
                    entry.hardlink = None  # its first link was not backed up: it leads now
                    kept = None
                    if found is not None and parents is not None:
                        kept = _carried_over(entry, found, parents, index)
                    if kept is not None:
                        entry.chunks, line = kept
                        stats.files_unchanged += 1
                    elif read_on_workers and 0 < entry.size <= small_file and entry.nlink == 1:
                        read = partial(_read_small_file, source, entry, small_file)
                        refs = [writer.add_read(ObjectType.DATA, read, entry.size)]
                        deferred = True
                    else:
                        refs = _read_file(source, entry, chunker, writer, stats, on_error)
                        if refs is None:
                            continue
                if entry.nlink > 1 and entry.hardlink is None:
                    leaders[entry.path] = (entry, refs)
                stats.files += 1
                stats.bytes += entry.size
            elif entry.kind == DIR:
                stats.dirs += 1
            elif entry.kind == SYMLINK:
                stats.symlinks += 1
            else:
                stats.special += 1
            waiting.append((entry, refs, line, deferred))
            settle()
            if progress and time.monotonic() - last_report > 0.2:
                last_report = time.monotonic()
                progress(
                    ProgressEvent(
                        "backup", stats.files, stats.bytes, stats.bytes_read, _display(entry.path)
                    )
                )
        while waiting:  # settling may read a file again, which hands over more chunks
            writer.drain()
            settle()
        list_refs = filelist.close()
        if progress:
            progress(ProgressEvent("commit", stats.files, stats.bytes, stats.bytes_read))
        writer.finish()
        snap.filelist = [ref.id.hex() for ref in list_refs if ref.id is not None]
        if len(snap.filelist) != len(list_refs):
            raise KvbackupError("internal error: a file-list chunk has no id")
    except BaseException:
        writer.abort()
        raise
    stats.excluded = matcher.excluded if matcher is not None else 0
    messages = commit_snapshot(repo, snap, index, stats, skipped, resumes, lock)
    return BackupResult(
        snap,
        stats,
        skipped,
        repo.counts.as_dict(),
        messages,
        time.time() - started,
        warnings=list(getattr(source, "warnings", None) or []),
    )


@dataclass
class StartedSnapshot:
    """An incomplete snapshot record written, with its group's index and its lineage."""

    snap: Snapshot
    index: GroupIndex
    resumed_packs: int
    parent: Snapshot | None
    resumes: Snapshot | None


def begin_snapshot(
    repo: RepoCore,
    source: Source,
    source_kind: str,
    started: float,
    full: bool,
    host: str | None,
    tags: list[str] | None,
    excludes: ExcludeRules | None = None,
) -> StartedSnapshot:
    """Choose the group and parent, load the group's index and write the ``.open`` record."""
    planned = plan_snapshot(repo, source, source_kind, started, full, host, tags, excludes)
    _open_snapshot(repo, planned.snap)
    return planned


def plan_snapshot(
    repo: RepoCore,
    source: Source,
    source_kind: str,
    started: float,
    full: bool,
    host: str | None,
    tags: list[str] | None,
    excludes: ExcludeRules | None = None,
) -> StartedSnapshot:
    """Choose the group and parent and load the group's index; nothing is written."""
    host = host or socket.gethostname()
    history = [s for s in repo.snapshots() if s.host == host and s.source == source.identity]
    parent: Snapshot | None = None
    resumes: Snapshot | None = None
    if full or not history:
        group = secrets.token_hex(8)
    else:
        group = history[-1].group
        in_group = [s for s in history if s.group == group]
        complete = [s for s in in_group if s.complete]
        parent = complete[-1] if complete else None
        if not in_group[-1].complete:
            resumes = in_group[-1]
    snap = Snapshot(
        id=new_snapshot_id(started),
        time=utc_time(started),
        host=host,
        user=_user(),
        source=source.identity,
        source_kind=source_kind,
        group=group,
        parent=parent.id if parent else None,
        resumes=resumes.id if resumes else None,
        full=parent is None and resumes is None,
        tags=tags or [],
        excludes=excludes.to_json() if excludes is not None and not excludes.empty else None,
    )
    if group in {s.group for s in history}:
        # Packs no index names exist only if a backup of this group was interrupted (its
        # .open record is written before any pack): only then are trailers looked for.
        index, resumed_packs = repo.load_index(group, recover=resumes is not None)
    else:
        index, resumed_packs = GroupIndex(), 0
    return StartedSnapshot(snap, index, resumed_packs, parent, resumes)


def commit_snapshot(
    repo: RepoCore,
    snap: Snapshot,
    index: GroupIndex,
    stats: BackupStats,
    skipped: list[tuple[str, str]],
    resumes: Snapshot | None,
    lock: RepositoryLock,
) -> list[str]:
    """Write the complete snapshot record (the commit point), then merge the group's index
    fragments if it has many; return messages for the user."""
    messages: list[str] = []
    group, resumed_packs = snap.group, stats.resumed_packs
    stats.skipped = len(skipped)
    if resumes is not None:
        stats.resumed_chunks = stats.chunks_deduplicated
        messages.append(
            f"resumed interrupted snapshot {resumes.id}: {stats.chunks_deduplicated} chunks "
            f"already stored in group {group} were reused, not uploaded again"
            + (f" ({resumed_packs} packs recovered from their trailers)" if resumed_packs else "")
        )
    snap.state = COMPLETE
    snap.end_time = utc_time(time.time())
    snap.stats = asdict(stats)
    snap.skipped = [{"path": p, "error": e} for p, e in skipped[:MAX_SKIPPED_RECORDED]]
    lock.check()  # a lock gone stale no longer protects the group from a prune
    repo.put_object(
        snapshot_key(snap.id, final=True), ObjectType.SNAPSHOT, json.dumps(snap.to_json()).encode()
    )
    if len(index.fragment_keys) >= MERGE_AT:
        # Keeps the next backups' index reads cheap; safe: prune leaves this group alone
        # while this backup holds its lock.
        merged = merge_fragments(repo, group, index.fragment_keys)
        if merged:
            messages.append(f"merged {merged} index fragments of group {group} into one")
    return messages


def _scan(
    source: Source, matcher: ExcludeMatcher | None, on_error: Callable[[bytes, Exception], None]
) -> Iterator[Entry]:
    """The source's entries, sound and not excluded."""
    if matcher is not None and source.applies_excludes:
        source.excludes = matcher
    entries = _checked(source.scan(on_error), on_error)
    if matcher is not None and not source.applies_excludes:
        entries = matcher.filter(entries)
    return entries


def _dry_run(
    repo: RepoCore,
    source: Source,
    planned: StartedSnapshot,
    rehash: bool,
    matcher: ExcludeMatcher | None,
    started: float,
) -> BackupResult:
    """What a backup would read, found by scanning and comparing with the parent; nothing
    is read or written."""
    snap, index, parent = planned.snap, planned.index, planned.parent
    stats = BackupStats()
    skipped: list[tuple[str, str]] = []
    would_read: list[str] = []

    def on_error(path: bytes, exc: Exception) -> None:
        skipped.append((_display(path), _describe_error(exc)))

    parents = None
    if parent is not None and source.ordered and not rehash:
        parents = repo.parent_list(parent, index)
    for entry in _scan(source, matcher, on_error):
        found = parents.find(entry) if parents is not None else None
        if entry.kind == FILE:
            stats.files += 1
            stats.bytes += max(entry.size, 0)
            if entry.hardlink is not None:
                stats.hardlinks += 1
            elif found and parents and _carried_over(entry, found, parents, index) is not None:
                stats.files_unchanged += 1
            else:
                stats.files_read += 1
                stats.bytes_read += max(entry.size, 0)
                if len(would_read) < 10_000:
                    would_read.append(_display(entry.path))
        elif entry.kind == DIR:
            stats.dirs += 1
        elif entry.kind == SYMLINK:
            stats.symlinks += 1
        else:
            stats.special += 1
    stats.skipped = len(skipped)
    stats.excluded = matcher.excluded if matcher is not None else 0
    return BackupResult(
        snap,
        stats,
        skipped,
        repo.counts.as_dict(),
        [],
        time.time() - started,
        warnings=list(getattr(source, "warnings", None) or []),
        dry_run=True,
        would_read=would_read,
    )


def _read_file(
    source: Source,
    entry: Entry,
    chunker: Chunker,
    writer: ChunkWriter,
    stats: BackupStats,
    on_error: Callable[[bytes, Exception], None],
) -> list[ChunkRef] | None:
    """Hand the file's chunks to the writer; ``None`` (and reported) if it cannot be read."""
    refs: list[ChunkRef] = []
    size = 0
    try:
        with source.open(entry) as stream:
            for data in chunker.chunks(stream, entry.size):
                refs.append(writer.add(ObjectType.DATA, data))
                size += len(data)
    except OSError as exc:
        on_error(entry.path, exc)
        return None
    _account_read(entry, size, stats, on_error)
    return refs


class _NotSmall(Exception):
    """A small file grew past the bound, or shrank to nothing, since it was listed."""


def _read_small_file(source: Source, entry: Entry, small_file: int) -> bytes:
    """A small file's one chunk (on a writer's worker thread); :class:`_NotSmall` if it is
    no longer one, so that it is read again on the main thread, as any file."""
    with source.open(entry) as stream:
        data = read_small(stream, entry.size, small_file)
    if not data or len(data) > small_file:
        raise _NotSmall
    return data


def _settle_read(
    entry: Entry,
    ref: ChunkRef,
    source: Source,
    chunker: Chunker,
    writer: ChunkWriter,
    stats: BackupStats,
    on_error: Callable[[bytes, Exception], None],
) -> list[ChunkRef] | None:
    """The outcome of a small file's read on a worker: its chunk, the chunks of a new read
    here if it is no longer small, or ``None`` (and reported) if it could not be read."""
    if ref.error is None:
        stats.bytes += ref.size - entry.size  # counted as listed when handed over
        _account_read(entry, ref.size, stats, on_error)
        return [ref]
    stats.files -= 1  # counted when handed over; counted again if read here
    stats.bytes -= entry.size
    if isinstance(ref.error, _NotSmall):
        refs = _read_file(source, entry, chunker, writer, stats, on_error)
        if refs is not None:
            stats.files += 1
            stats.bytes += entry.size
        return refs
    if isinstance(ref.error, OSError):
        on_error(entry.path, ref.error)
        return None
    raise ref.error


def _account_read(
    entry: Entry, size: int, stats: BackupStats, on_error: Callable[[bytes, Exception], None]
) -> None:
    """Count a file's ``size`` bytes read, and report it if they differ from its listing."""
    if entry.size >= 0 and size != entry.size:
        on_error(
            entry.path,
            SourceError(
                f"changed size while being read: {entry.size} bytes when listed, "
                f"{size} read (the {size} bytes read are stored)"
            ),
        )
    entry.size = size
    stats.files_read += 1
    stats.bytes_read += size


def _chain_with(repo: RepoCore, compression: str) -> list[dict[str, Any]]:
    """The repository's chain with its compression step replaced (``none`` or
    ``name[:level]``) for this run."""
    keep = [
        t
        for t in repo.config.transforms
        if repo.registry.get("transform", t["name"]).role != "compression"
    ]
    if compression == "none":
        return keep
    name, sep, level = compression.partition(":")
    reg = repo.registry.transform_for_role(name, "compression")
    options = repo.registry.transform_options(reg.name, {"level": level} if sep else {})
    return [{"name": reg.name, **options}, *keep]


def _describe_error(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return ""
