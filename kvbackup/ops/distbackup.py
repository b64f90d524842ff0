"""One backup spread over a Dask cluster, committed as one snapshot.

The client scans the source and pairs it with the parent snapshot as a one-process backup
does; unchanged files keep their chunk ids and are read by nobody. The files to read are cut
into shards of balanced size (consecutive in the source's order, so neighbouring files share
packs; a file larger than a shard in ranges of whole chunker segments, when the repository
has segments and the source can seek) and sent to the workers. A worker opens the
repository's store itself, reads its shard straight from the source, and runs the ordinary
write pipeline (:class:`ChunkWriter`): chunks, dedup against the group's index, transforms,
packs and index fragments. It returns the shard's entries with their chunk ids; the client
joins a split file's ranges (checking that they cover it exactly), writes the file list in
the source's order and commits, so the snapshot is the one a one-process backup of the same
source would make.

Workers get the key material with the task (see ``docs/distributed.md``): the client refuses
a cluster reached over plain TCP on a non-loopback address unless told the network is trusted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from ..core.damage import load_damage_records
from ..core.locks import RepositoryLock, acquire_backup
from ..core.progress import Progress, ProgressEvent
from ..core.repo import RepoCore, open_store
from ..core.writer import ChunkRef, ChunkWriter
from ..errors import (
    ClusterError,
    CorruptionError,
    KeyNotFoundError,
    KvbackupError,
    PluginError,
    SourceError,
    UsageError,
)
from ..excludes import ExcludeMatcher, ExcludeRules
from ..format.chunker import Chunker
from ..format.config import RepoConfig
from ..format.envelope import ObjectType
from ..format.filelist import FileListWriter
from ..format.index import GroupIndex
from ..format.keyslots import KeyMaterial
from ..format.layout import index_prefix
from ..registry import default_registry
from ..sources import DIR, FILE, Entry, Source
from ..store import default_deadline
from .backup import (
    BackupResult,
    BackupStats,
    _carried_over,
    _chain_with,
    _describe_error,
    _display,
    _read_file,
    _scan,
    begin_snapshot,
    commit_snapshot,
    make_source,
)

MISSING_EXTRA = "distributed backups need Dask: pip install 'kvbackup[dask]'"
#: Shards aim at this many bytes at most, and at least four per worker when there is less.
MAX_SHARD_BYTES = 256 << 20
MIN_SHARD_BYTES = 4 << 20
MAX_SHARD_FILES = 2000
SHARDS_PER_WORKER = 4
_WRITE_FIELDS = (
    "chunks_new",
    "bytes_new",
    "bytes_stored",
    "chunks_deduplicated",
    "bytes_deduplicated",
    "packs",
    "files_read",
    "bytes_read",
)


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise PluginError(MISSING_EXTRA) from None
    return distributed


# ----------------------------------------------------------------- the cluster


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_secure_address(address: str) -> None:
    """Refuse an address the key material would cross in clear: plain TCP (or websockets,
    UCX) to a host that is not loopback. ``tls://`` and in-process addresses are fine."""
    parts = urlsplit(address if "://" in address else "tcp://" + address)
    if parts.scheme in ("tls", "wss", "inproc"):
        return
    if not is_loopback(parts.hostname or ""):
        raise ClusterError(
            f"{address}: the repository key would travel to this Dask cluster unencrypted; "
            "use a tls:// scheduler (Dask TLS security), or declare the network trusted "
            "(--dask-trusted-network)"
        )


def check_cluster(client: Any, trusted_network: bool) -> list[str]:
    """The workers' addresses; raises unless every hop is TLS or loopback (or trusted)."""
    info = client.scheduler_info()
    workers = sorted(info.get("workers", {}))
    if not workers:
        raise ClusterError("the Dask cluster has no workers")
    if not trusted_network:
        for address in [client.scheduler.address, *workers]:
            check_secure_address(address)
    return workers


@contextlib.contextmanager
def worker_malloc_defaults() -> Iterator[None]:
    """While the block runs, worker processes that Dask spawns here keep glibc's malloc
    defaults. Dask sets ``MALLOC_TRIM_THRESHOLD_`` for them, which also fixes the mmap
    threshold at 128 KiB: every chunk (about 1 MiB) is then mapped and unmapped, and a
    worker backed up 2.3x slower than with the defaults (docs/distributed.md)."""
    import dask

    key = "distributed.nanny.pre-spawn-environ"
    environ = {k: v for k, v in dask.config.get(key, {}).items() if k != "MALLOC_TRIM_THRESHOLD_"}
    with dask.config.set({key: environ}):
        yield


@contextlib.contextmanager
def dask_client(address: str, trusted_network: bool = False) -> Iterator[Any]:
    """A client of the scheduler at ``address`` (refused before connecting if it is plain
    TCP beyond loopback and not ``trusted_network``); ``local[:N]`` starts a local cluster
    of N worker processes (default: one per CPU) on loopback for the duration."""
    local = address == "local" or address.startswith("local:")
    if not local and not trusted_network:
        check_secure_address(address)
    distributed = _distributed()
    if local:
        count = address.partition(":")[2]
        if count and not count.isdigit():
            raise ClusterError(f"--dask {address}: expected local or local:N (N workers)")
        n = int(count) if count else max(1, os.cpu_count() or 1)
        with (
            worker_malloc_defaults(),
            distributed.LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=":0",
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client
        return
    with distributed.Client(address) as client:
        yield client


# ----------------------------------------------------------------- what a worker gets


@dataclass
class RunSpec:
    """Everything a worker needs to write into the repository for one run."""

    run_id: str
    store_location: str
    store_options: dict[str, str]
    master_key: bytes
    config: bytes
    group: str
    chain: list[dict[str, Any]]
    source_spec: str
    source_type: str | None
    source_options: dict[str, str]
    source_identity: str
    #: The client's deadline per store operation (``$KVBACKUP_STORE_DEADLINE`` there),
    #: unless the store's options set their own: workers elsewhere lack its environment.
    store_deadline: float


@dataclass
class ShardResult:
    """What a worker did with one shard: for each of its pieces (a file, or a range of one)
    the bytes read, the chunk count and the chunk ids (``None`` if it could not be read),
    what it could not read, its counters."""

    worker: str
    entries: list[tuple[int, int, list[bytes]] | None]
    skipped: list[tuple[str, str]]
    stats: dict[str, int]
    seconds: float


@dataclass
class _WorkerRun:
    core: RepoCore
    index: GroupIndex
    source: Any
    fragments: set[str] = field(default_factory=set)
    damage_loaded: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


_RUNS: dict[str, _WorkerRun] = {}
_RUNS_LOCK = threading.Lock()


def _worker_run(spec: RunSpec) -> _WorkerRun:
    """This process's open repository, index and source for ``spec``'s run (opened once)."""
    with _RUNS_LOCK:
        run = _RUNS.get(spec.run_id)
        if run is None:
            registry = default_registry()
            store = open_store(spec.store_location, spec.store_options, registry)
            if store.deadline is None:
                store.deadline = spec.store_deadline
            core = RepoCore(
                store,
                KeyMaterial(spec.master_key),
                RepoConfig.from_json(spec.config),
                registry,
                spec.store_location,
            )
            source, _kind = make_source(
                core, spec.source_spec, spec.source_type, spec.source_options
            )
            if source.identity != spec.source_identity:
                raise KvbackupError(
                    f"a worker sees the source as {source.identity!r}, the client as "
                    f"{spec.source_identity!r}: give a source every worker names the same way"
                )
            run = _RUNS[spec.run_id] = _WorkerRun(core, GroupIndex(), source)
    return run


def _refresh_index(run: _WorkerRun, group: str) -> None:
    """Add the index fragments written since the last look (by any worker) to the index;
    the first time, leave out the chunk copies verify found damaged (as the client's index
    does), so that a worker stores those chunks again instead of deduplicating to them."""
    with run.lock:
        listed, damage_keys = run.core.list_index_keys(group)
        if not run.damage_loaded:
            run.index.avoid(load_damage_records(run.core, group, damage_keys))
            run.damage_loaded = True
        keys = [k for k in listed if k not in run.fragments]
        loaded = run.core.map_parallel(_read_fragment(run.core), keys)
        for key, packs in zip(keys, loaded, strict=True):
            if packs is None:
                continue  # merged away meanwhile: the merged fragment is listed next time
            for pack_id, blobs in packs:
                run.index.add_pack(pack_id, blobs)
            run.fragments.add(key)


def _read_fragment(core: RepoCore) -> Any:
    def read(key: str) -> Any:
        try:
            return core.read_index_fragment(key)
        except KeyNotFoundError:
            return None
        except CorruptionError:
            return []  # a damaged fragment: the client reports it; its chunks count as new

    return read


class Piece(NamedTuple):
    """What one task reads of the file at position ``pos`` of the files to read: all of it
    (``start`` 0, ``length`` ``None``), or the bytes from ``start``, a multiple of the
    segment size: ``length`` of them (whole segments), or to the end of the file."""

    pos: int
    start: int = 0
    length: int | None = None

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.length is None


def backup_shard(spec: RunSpec, pieces: list[tuple[Entry, int, int | None]]) -> ShardResult:
    """Read, chunk and store one shard's files, or ranges of a file (runs on a Dask worker):
    each piece is an entry with the ``start`` and ``length`` of a :class:`Piece`."""
    started = time.monotonic()
    run = _worker_run(spec)
    _refresh_index(run, spec.group)
    stats = BackupStats()
    codec = run.core.make_codec(spec.chain)
    writer = ChunkWriter(
        run.core, spec.group, run.index, codec, run.core.config.pack_size, stats=stats
    )
    chunker = Chunker(run.core.config.chunker)
    skipped: list[tuple[str, str]] = []

    def on_error(path: bytes, exc: Exception) -> None:
        skipped.append((_display(path), _describe_error(exc)))

    refs_per_piece: list[tuple[int, list[ChunkRef]] | None] = []
    try:
        for entry, start, length in pieces:
            if start == 0 and length is None:
                refs = _read_file(run.source, entry, chunker, writer, stats, on_error)
                refs_per_piece.append(None if refs is None else (entry.size, refs))
            else:
                refs_per_piece.append(
                    _read_range(run.source, entry, start, length, chunker, writer, stats, on_error)
                )
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    out: list[tuple[int, int, list[bytes]] | None] = []
    for item in refs_per_piece:
        if item is None:
            out.append(None)
            continue
        size, refs = item
        ids = [ref.id for ref in refs if ref.id is not None]
        if len(ids) != len(refs):
            raise KvbackupError("internal error: a chunk has no id")
        out.append((size, len(ids), ids))
    return ShardResult(
        worker=_worker_address(),
        entries=out,
        skipped=skipped,
        stats={name: getattr(stats, name) for name in _WRITE_FIELDS},
        seconds=time.monotonic() - started,
    )


def _read_range(
    source: Source,
    entry: Entry,
    start: int,
    length: int | None,
    chunker: Chunker,
    writer: ChunkWriter,
    stats: BackupStats,
    on_error: Callable[[bytes, Exception], None],
) -> tuple[int, list[ChunkRef]] | None:
    """Hand the chunks of ``length`` bytes of the file from ``start`` (to the end if
    ``None``) to the writer: the same chunks a pass over the whole file gives there, since
    ``start`` is a segment boundary. The file counts as read by its first range."""
    refs: list[ChunkRef] = []
    size = 0
    try:
        with source.open(entry) as stream:
            stream.seek(start)
            for data in chunker.segment_chunks(stream, length):
                refs.append(writer.add(ObjectType.DATA, data))
                size += len(data)
    except OSError as exc:
        on_error(entry.path, exc)
        return None
    if start == 0:
        stats.files_read += 1
    stats.bytes_read += size
    return size, refs


def forget_run(run_id: str) -> dict[str, int]:
    """Close what this worker process opened for a finished run; return the requests it
    made to the store."""
    with _RUNS_LOCK:
        run = _RUNS.pop(run_id, None)
    if run is None:
        return {}
    with contextlib.suppress(Exception):
        run.source.close()
    run.core.close()
    return run.core.counts.as_dict()


def _worker_address() -> str:
    try:
        return str(_distributed().get_worker().address)
    except (ValueError, PluginError):
        return "local"


# ----------------------------------------------------------------- the client


def plan_shards(
    sizes: list[int], workers: int, segment_size: int | None = None
) -> list[list[Piece]]:
    """Cut the files ``0..len(sizes)`` into consecutive shards of about equal bytes: at most
    :data:`MAX_SHARD_BYTES` and, for a small source, about :data:`SHARDS_PER_WORKER` per
    worker so that every worker has work. A file larger than a shard is split into ranges
    of whole segments of ``segment_size`` bytes, about a shard each, one shard per range;
    without a segment size (an old repository, or a source without ranged reads) it is a
    shard of its own."""
    total = sum(max(0, size) for size in sizes)
    per_worker = total // max(1, workers * SHARDS_PER_WORKER)
    target = max(MIN_SHARD_BYTES, min(MAX_SHARD_BYTES, per_worker))
    shards: list[list[Piece]] = []
    current: list[Piece] = []
    current_bytes = 0
    for pos, size in enumerate(sizes):
        if segment_size and size > target and size > segment_size:
            if current:
                shards.append(current)
                current, current_bytes = [], 0
            shards.extend([piece] for piece in _ranges(pos, size, target, segment_size))
            continue
        if current and (current_bytes + size > target or len(current) >= MAX_SHARD_FILES):
            shards.append(current)
            current, current_bytes = [], 0
        current.append(Piece(pos))
        current_bytes += max(0, size)
    if current:
        shards.append(current)
    return shards


def _ranges(pos: int, size: int, target: int, segment_size: int) -> Iterator[Piece]:
    """Ranges of whole segments of about ``target`` bytes covering the file; the last one
    reads to the end (so a file that grew is read whole, as in one process)."""
    step = max(1, target // segment_size) * segment_size
    for start in range(0, size, step):
        yield Piece(pos, start, step if start + step < size else None)


def assemble_ranges(
    pieces: list[tuple[Piece, tuple[int, int, list[bytes]] | None]],
) -> tuple[int, list[bytes]] | None:
    """One file's size and chunk ids from the results of its ranges, in any order: ``None``
    if a range could not be read or the file changed while its ranges were read (a short
    range followed by more bytes). A range missing or given twice is an error (never a
    truncated file)."""
    ordered = sorted(pieces, key=lambda item: item[0].start)
    expected = 0
    for n, (piece, _result) in enumerate(ordered):
        last = n == len(ordered) - 1
        if piece.start != expected or (piece.length is None) != last:
            raise KvbackupError(
                f"internal error: the ranges of a file read in parts do not cover it "
                f"(got {[(p.start, p.length) for p, _ in ordered]}): nothing is committed"
            )
        expected = piece.start + (piece.length or 0)
    size = 0
    chunks: list[bytes] = []
    for piece, result in ordered:
        if result is None:
            return None
        got, _count, ids = result
        if size != piece.start and got:
            return None  # an earlier range was short: the file changed while being read
        size += got
        chunks.extend(ids)
    return size, chunks


def run_distributed_backup(
    repo: RepoCore,
    spec: Any,
    client: Any,
    *,
    trusted_network: bool = False,
    full: bool = False,
    rehash: bool = False,
    source_type: str | None = None,
    source_options: Mapping[str, str] | None = None,
    compression: str | None = None,
    progress: Progress | None = None,
    host: str | None = None,
    tags: list[str] | None = None,
    excludes: ExcludeRules | None = None,
) -> BackupResult:
    """Back ``spec`` up with the workers of the Dask ``client``; see the module docstring."""
    started = time.time()
    if not isinstance(spec, (str, os.PathLike)):
        raise SourceError(
            "a distributed backup needs a source every worker can open by name (a path or URL)"
        )
    spec = os.fspath(spec)
    if "://" not in spec:
        spec = os.path.abspath(spec)
    if repo.store_location is None:
        raise UsageError("a distributed backup needs a repository opened by path or URL")
    # Checked first, as by a one-process backup: a bad --compression writes nothing.
    chain = _chain_with(repo, compression) if compression else repo.config.transforms
    repo.make_codec(chain)
    workers = check_cluster(client, trusted_network)
    source, source_kind = make_source(repo, spec, source_type, source_options)
    lock = None
    try:
        # The same backup lock as a one-process backup: a prune leaves the group alone
        # (and its workers' packs) until it is released.
        lock = acquire_backup(repo, host or socket.gethostname(), source.identity)
        return _run(
            repo, source, source_kind, spec, client, workers, started,
            full=full, rehash=rehash, source_type=source_type,
            source_options=dict(source_options or {}), chain=chain,
            progress=progress, host=host, tags=tags, lock=lock, excludes=excludes,
        )  # fmt: skip
    finally:
        if lock is not None:
            lock.release()
        source.close()


def _run(
    repo: RepoCore,
    source: Any,
    source_kind: str,
    spec: str,
    client: Any,
    workers: list[str],
    started: float,
    *,
    full: bool,
    rehash: bool,
    source_type: str | None,
    source_options: dict[str, str],
    chain: list[dict[str, Any]],
    progress: Progress | None,
    host: str | None,
    tags: list[str] | None,
    lock: RepositoryLock,
    excludes: ExcludeRules | None = None,
) -> BackupResult:
    begun = begin_snapshot(repo, source, source_kind, started, full, host, tags, excludes)
    snap, parent, resumes, index = begun.snap, begun.parent, begun.resumes, begun.index
    stats = BackupStats(resumed_packs=begun.resumed_packs)
    fragments_before = set(repo.store.list(index_prefix(snap.group)))
    skipped: list[tuple[str, str]] = []

    def on_error(path: bytes, exc: Exception) -> None:
        skipped.append((_display(path), _describe_error(exc)))

    # 1. Scan and pair with the parent: every entry, in order; the files to read apart.
    parents = None
    if parent is not None and source.ordered and not rehash:
        parents = repo.parent_list(parent, index)
    items: list[tuple[Entry, bytes | None]] = []
    to_read: list[int] = []
    matcher = ExcludeMatcher(excludes) if excludes is not None and not excludes.empty else None
    for entry in _scan(source, matcher, on_error):
        line: bytes | None = None
        found = parents.find(entry) if parents is not None else None
        if entry.kind == FILE:
            # Workers read files apart, so each hard link is stored as a file of its own
            # (its chunks deduplicated), never as a link to one a worker may fail to read.
            entry.hardlink = None
            kept = None
            if found is not None and parents is not None:
                kept = _carried_over(entry, found, parents, index)
            if kept is not None:
                entry.chunks, line = kept
                stats.files_unchanged += 1
            else:
                to_read.append(len(items))
        items.append((entry, line))
    if progress:
        progress(ProgressEvent("scan", len(items)))

    # 2. Shards to the workers; their results as they come.
    run_spec = RunSpec(
        run_id=uuid.uuid4().hex,
        store_location=_absolute(repo.store_location or ""),
        store_options=repo.store_options,
        master_key=repo.keys.master,
        config=repo.config.to_json(),
        group=snap.group,
        chain=chain,
        source_spec=spec,
        source_type=source_type,
        source_options=source_options,
        source_identity=source.identity,
        store_deadline=default_deadline(),
    )
    segment_size = repo.config.chunker.segment_size if source.ranged_reads else None
    shards = plan_shards([items[i][0].size for i in to_read], len(workers), segment_size)
    results: dict[int, ShardResult] = {}
    per_worker: dict[str, dict[str, Any]] = {}
    distributed = _distributed()
    futures = {
        client.submit(
            backup_shard,
            run_spec,
            [(_for_worker(items[to_read[p.pos]][0]), p.start, p.length) for p in shard],
            key=f"kvbackup-shard-{run_spec.run_id}-{n}",
            pure=False,
        ): n
        for n, shard in enumerate(shards)
    }
    try:
        for future in distributed.as_completed(list(futures)):
            result: ShardResult = future.result()
            results[futures[future]] = result
            _account(per_worker, result)
            if progress:
                done = [r.stats for r in results.values()]
                progress(
                    ProgressEvent(
                        "backup",
                        sum(s["files_read"] for s in done),
                        sum(s["bytes_read"] for s in done),
                        sum(s["bytes_read"] for s in done),
                    )
                )
    except BaseException:
        for future in futures:
            future.cancel()
        with contextlib.suppress(Exception):
            client.run(forget_run, run_spec.run_id)
        raise
    for address, counts in client.run(forget_run, run_spec.run_id).items():
        if counts:
            per_worker.setdefault(address, _new_account())["requests"] = counts

    # 3. Merge: chunk ids into their entries, then the file list in the source's order.
    unreadable: set[int] = set()
    in_parts: dict[int, list[tuple[Piece, tuple[int, int, list[bytes]] | None]]] = {}
    for n, shard in enumerate(shards):
        result = results[n]
        skipped.extend(result.skipped)
        for piece, item in zip(shard, result.entries, strict=True):
            if not piece.whole:
                in_parts.setdefault(piece.pos, []).append((piece, item))
            elif item is None:
                unreadable.add(to_read[piece.pos])
            else:
                entry = items[to_read[piece.pos]][0]
                entry.size, _count, entry.chunks = item
    for p, pieces in in_parts.items():
        entry = items[to_read[p]][0]
        whole = assemble_ranges(pieces)
        if whole is None:
            unreadable.add(to_read[p])
            if not any(path == _display(entry.path) for path, _ in skipped):
                skipped.append((_display(entry.path), "changed while being read in parts"))
            continue
        if whole[0] != entry.size:
            skipped.append(
                (
                    _display(entry.path),
                    f"changed size while being read: {entry.size} bytes when listed, "
                    f"{whole[0]} read (the {whole[0]} bytes read are stored)",
                )
            )
        entry.size, entry.chunks = whole
    skipped = list(dict.fromkeys(skipped))  # a file read in parts: each message once
    for name in _WRITE_FIELDS:
        setattr(stats, name, sum(r.stats[name] for r in results.values()))

    indexed_before = index.ids()
    writer = ChunkWriter(repo, snap.group, index, repo.codec, repo.config.pack_size)
    filelist: FileListWriter[Any] = FileListWriter(
        lambda data: writer.add(ObjectType.METADATA, data)
    )
    try:
        for pos, (entry, line) in enumerate(items):
            if pos in unreadable:
                continue
            if entry.kind == FILE:
                stats.files += 1
                stats.bytes += entry.size
            elif entry.kind == DIR:
                stats.dirs += 1
            else:
                stats.symlinks += 1
            filelist.add(entry, line)
        list_refs = filelist.close()
        if progress:
            progress(ProgressEvent("commit", stats.files, stats.bytes, stats.bytes_read))
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    for name in _WRITE_FIELDS[:6]:
        setattr(stats, name, getattr(stats, name) + getattr(writer.stats, name))
    snap.filelist = [ref.id.hex() for ref in list_refs if ref.id is not None]
    if len(snap.filelist) != len(list_refs):
        raise KvbackupError("internal error: a file-list chunk has no id")
    skipped.sort()
    stats.excluded = matcher.excluded if matcher is not None else 0
    messages = commit_snapshot(repo, snap, index, stats, skipped, resumes, lock)
    duplicates = _count_duplicates(repo, snap.group, fragments_before, indexed_before)
    requests = repo.counts.as_dict()
    for info in per_worker.values():
        for k, v in info["requests"].items():
            requests[k] = requests.get(k, 0) + v
    return BackupResult(
        snap,
        stats,
        skipped,
        requests,
        messages,
        time.time() - started,
        distributed={
            "scheduler": client.scheduler.address,
            "shards": len(shards),
            "files_split": len(in_parts),
            "ranges": sum(len(pieces) for pieces in in_parts.values()),
            "workers": per_worker,
            **duplicates,
        },
    )


def _absolute(location: str) -> str:
    return location if "://" in location else os.path.abspath(location)


def _for_worker(entry: Entry) -> Entry:
    """The entry as a worker needs it (no file-list line to carry)."""
    return Entry(**{**{f: getattr(entry, f) for f in Entry.__slots__}, "line": None})


def _account(per_worker: dict[str, dict[str, Any]], result: ShardResult) -> None:
    info = per_worker.setdefault(result.worker, _new_account())
    info["shards"] += 1
    info["seconds"] = round(info["seconds"] + result.seconds, 3)
    for name in _WRITE_FIELDS:
        info[name] += result.stats[name]


def _new_account() -> dict[str, Any]:
    return {"shards": 0, "seconds": 0.0, **dict.fromkeys(_WRITE_FIELDS, 0), "requests": {}}


def _count_duplicates(
    repo: RepoCore, group: str, before: set[str], known: set[bytes]
) -> dict[str, int]:
    """Chunks this run's index fragments name more than once, or that were indexed already:
    stored twice because two workers wrote them at once (see docs/distributed.md)."""
    chunks = bytes_ = 0
    new_keys = [k for k in repo.store.list(index_prefix(group)) if k not in before]
    for packs in repo.map_parallel(repo.read_index_fragment, new_keys):
        for _pack_id, blobs in packs:
            for blob in blobs:
                if blob.chunk_id in known:
                    chunks += 1
                    bytes_ += blob.length
                known.add(blob.chunk_id)
    return {"chunks_duplicated": chunks, "bytes_duplicated": bytes_}
