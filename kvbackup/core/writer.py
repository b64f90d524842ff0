"""The write pipeline: chunks -> id, dedup and transforms (worker threads) -> packs -> store.

The caller (one thread) only hands chunks over: hashing, the deduplication check against the
group and the transforms run on worker threads, several small chunks to a job. A chunk can
also be handed over as a read (a small file's one chunk): the worker reads it too, so the
caller's thread goes on scanning while the workers read, hash and compress. Each chunk's
id is known once its job is done; results are packed in the order the chunks were added, so
chunks that follow each other in a file follow each other in a pack and a restore reads them
with one ranged GET. Memory is bounded: a few jobs wait for the workers and a few packs for
upload. Index fragments are written only after every pack they name is stored, so an index
never points at a pack that does not exist.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ..format.envelope import Codec, ObjectType
from ..format.index import BlobLocation, GroupIndex
from ..format.layout import pack_key
from ..format.packs import PackBuilder
from .repo import RepoCore

INDEX_EVERY_PACKS = 32
INDEX_EVERY_SECONDS = 120.0


@dataclass
class WriteStats:
    """Chunks and packs a writer stored, and chunks it found already stored."""

    chunks_new: int = 0
    bytes_new: int = 0
    bytes_stored: int = 0
    chunks_deduplicated: int = 0
    bytes_deduplicated: int = 0
    packs: int = 0


class ChunkRef:
    """A chunk handed to the writer; ``id`` and ``size`` are set once the chunk has been
    hashed. A chunk handed over as a read that failed gets the read's ``error`` instead."""

    __slots__ = ("error", "id", "size")

    def __init__(self) -> None:
        self.id: bytes | None = None
        self.size = 0
        self.error: Exception | None = None

    @property
    def done(self) -> bool:
        """Hashed, or its read failed."""
        return self.id is not None or self.error is not None


#: A chunk to store: its bytes, or a read returning them (run on a worker thread).
_Data = bytes | Callable[[], bytes]
_Job = list[tuple[int, _Data, ChunkRef]]
#: A job's result per chunk: its id, its encoded blob (``None`` if already stored) and its
#: size; or the exception its read raised.
_Result = list[tuple[bytes, bytes | None, int] | Exception]

BATCH_BYTES = 1 << 20
BATCH_CHUNKS = 64


class ChunkWriter:
    """Stores chunks of one backup into packs of ``group``."""

    def __init__(
        self,
        repo: RepoCore,
        group: str,
        index: GroupIndex,
        codec: Codec,
        pack_size: int,
        workers: int | None = None,
        stats: WriteStats | None = None,
    ):
        self.repo = repo
        self.group = group
        self.index = index
        self.codec = codec
        self.pack_size = pack_size
        self.stats = stats if stats is not None else WriteStats()
        self._known = index.ids()
        self._known_lock = threading.Lock()
        workers = workers or max(1, os.cpu_count() or 1)
        self._workers = ThreadPoolExecutor(workers, thread_name_prefix="kvbackup-transform")
        self._max_pending = workers * 3
        self._pending: deque[tuple[_Job, Future[_Result]]] = deque()
        self._batch: _Job = []
        self._batch_bytes = 0
        max_uploads = max(1, min(repo.store.concurrency, 4))
        self._uploads = ThreadPoolExecutor(max_uploads, thread_name_prefix="kvbackup-upload")
        self._upload_slots = threading.BoundedSemaphore(max_uploads)
        self._lock = threading.Lock()
        self._open: dict[int, PackBuilder] = {}
        self._unindexed: list[tuple[bytes, list[BlobLocation]]] = []
        self._last_index = time.monotonic()
        self._error: BaseException | None = None

    def add(self, otype: int, data: bytes) -> ChunkRef:
        """Hand ``data`` over for storing (unless the group has it already)."""
        return self._add(otype, data, len(data))

    def add_read(self, otype: int, read: Callable[[], bytes], size_hint: int) -> ChunkRef:
        """Hand over a chunk of about ``size_hint`` bytes that ``read`` returns, called on a
        worker thread. If it raises an :class:`Exception`, the chunk is not stored and its
        ref gets the exception as ``error`` (in the order chunks were added, like ids)."""
        return self._add(otype, read, size_hint)

    def _add(self, otype: int, data: _Data, size: int) -> ChunkRef:
        self.check()
        ref = ChunkRef()
        self._batch.append((otype, data, ref))
        self._batch_bytes += size
        if self._batch_bytes >= BATCH_BYTES or len(self._batch) >= BATCH_CHUNKS:
            self._submit_batch()
        self._drain(block=len(self._pending) > self._max_pending)
        return ref

    def drain(self) -> None:
        """Wait until every chunk added so far has its id (and is packed)."""
        self._submit_batch()
        self._drain(block=True, everything=True)

    def check(self) -> None:
        """Raise the first error a worker ran into."""
        if self._error is not None:
            raise self._error

    def _submit_batch(self) -> None:
        if self._batch:
            job, self._batch, self._batch_bytes = self._batch, [], 0
            self._pending.append((job, self._workers.submit(self._run_job, job)))

    def _run_job(self, job: _Job) -> _Result:
        """Hash, deduplicate and encode a job's chunks (on a worker thread)."""
        out: _Result = []
        for otype, item, _ref in job:
            if callable(item):
                try:
                    data = item()
                except Exception as exc:
                    out.append(exc)
                    continue
            else:
                data = item
            cid = self.repo.hasher(data)
            with self._known_lock:
                new = cid not in self._known
                self._known.add(cid)
            out.append((cid, self.codec.encode(otype, cid, data) if new else None, len(data)))
        return out

    def _drain(self, block: bool, everything: bool = False) -> None:
        """Pack finished jobs, oldest first; wait for the oldest if ``block``."""
        while self._pending and (block or everything or self._pending[0][1].done()):
            job, future = self._pending.popleft()
            results = future.result()
            block = False
            for (otype, _data, ref), result in zip(job, results, strict=True):
                if isinstance(result, Exception):
                    ref.error = result
                    continue
                cid, blob, size = result
                ref.id, ref.size = cid, size
                if blob is None:
                    self.stats.chunks_deduplicated += 1
                    self.stats.bytes_deduplicated += size
                    continue
                self.stats.chunks_new += 1
                self.stats.bytes_new += size
                category = ObjectType.METADATA if otype == ObjectType.METADATA else ObjectType.DATA
                builder = self._open.get(category)
                if builder is None:  # not setdefault: a builder draws its random pack id
                    builder = self._open[category] = PackBuilder()
                builder.add(cid, otype, blob, size)
                self.stats.bytes_stored += len(blob)
                if builder.size >= self.pack_size:
                    del self._open[category]
                    self._submit_pack(builder)

    def _submit_pack(self, builder: PackBuilder) -> None:
        self._upload_slots.acquire()
        try:
            self._uploads.submit(self._put_pack, builder)
        except BaseException:
            self._upload_slots.release()
            raise
        self.check()

    def _put_pack(self, builder: PackBuilder) -> None:
        try:
            if self._error is not None:
                return
            key = pack_key(self.group, builder.pack_id)
            self.repo.store.put(key, builder.seal(self.codec, key))
            self.index.add_pack(builder.pack_id, builder.blobs)
            with self._lock:
                self.stats.packs += 1
                self._unindexed.append((builder.pack_id, builder.blobs))
                due = len(self._unindexed) >= INDEX_EVERY_PACKS or (
                    time.monotonic() - self._last_index > INDEX_EVERY_SECONDS
                )
                batch = self._take_unindexed() if due else []
            if batch:
                self.repo.write_index_fragment(self.group, batch)
        except BaseException as exc:
            self._error = self._error or exc
        finally:
            self._upload_slots.release()

    def _take_unindexed(self) -> list[tuple[bytes, list[BlobLocation]]]:
        batch, self._unindexed = self._unindexed, []
        self._last_index = time.monotonic()
        return batch

    def _seal_open_packs(self) -> None:
        builders = list(self._open.values())
        self._open.clear()
        for builder in builders:
            self._submit_pack(builder)

    def finish(self) -> None:
        """Wait for every chunk to be stored and indexed; raise the first error."""
        self.drain()
        self._workers.shutdown(wait=True)
        self._seal_open_packs()
        self._uploads.shutdown(wait=True)
        self.check()
        batch = self._take_unindexed()
        if batch:
            self.repo.write_index_fragment(self.group, batch)

    def abort(self) -> None:
        """Stop after an error: store what is already transformed and index it, best
        effort, so that the next backup reuses it."""
        with contextlib.suppress(BaseException):
            self.drain()
        self._workers.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(Exception):
            if self._error is None:
                self._seal_open_packs()
            self._uploads.shutdown(wait=True)
            batch = self._take_unindexed()
            if batch:
                self.repo.write_index_fragment(self.group, batch)
