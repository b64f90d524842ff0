"""The repository: the Python API of kvbackup.

repo = Repository.init("/srv/backups", password="...")     # or a URL, or a dict
repo.backup("/home/ann/Documents")
repo.restore("latest", "/tmp/restored")

A thin facade: it opens a :class:`~kvbackup.core.repo.RepoCore` and hands it to the
operations in :mod:`kvbackup.ops`, returning their typed results.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .core.damage import DamageLog
from .core.locks import RemovedLock, remove_stale_locks
from .core.progress import Progress
from .core.readlock import ReadLocks, reads, reads_lazily
from .core.repo import CacheChoice, Password, RepoCore
from .core.selection import SnapshotFilter
from .errors import UsageError
from .excludes import ExcludeRules
from .format.chunker import ChunkerParams
from .format.config import RepoConfig
from .format.packs import DEFAULT_PACK_SIZE
from .format.snapshots import Snapshot
from .ops.backup import BackupResult, run_backup
from .ops.cat import cat_file
from .ops.copy import CopyResult, run_copy
from .ops.diff import DiffResult, run_diff
from .ops.distbackup import run_distributed_backup
from .ops.find import FindMatch, NamePattern, find_chunks, find_names
from .ops.forget import ForgetResult, run_forget
from .ops.fullverify import FullVerifyResult, run_verify_full
from .ops.mount.tree import DEFAULT_CACHE_BYTES, SnapshotTree
from .ops.prune import DEFAULT_MAX_UNUSED, PruneResult, run_prune
from .ops.repair import RepairResult, repair_index, repair_snapshots
from .ops.restore import RestoreResult, run_restore
from .ops.restore_url import restore_to_url
from .ops.retention import RetentionPolicy
from .ops.stats import Stats, repository_stats, snapshot_stats
from .ops.verify import DEFAULT_MAX_AGE, VerifyResult, run_verify
from .registry import PluginRegistry
from .sources import Entry

__all__ = ["Repository"]


class Repository:
    """A kvbackup repository in a store. Use :meth:`init` or :meth:`open`.

    ``core`` is the layer below (store, keys, codec and read/write primitives) for tools
    and tests that need it; it is not part of the stable API.
    """

    def __init__(self, core: RepoCore) -> None:
        self.core = core
        self._read_locks = ReadLocks(core)

    # ----------------------------------------------------------------- opening

    @classmethod
    def init(
        cls,
        location: Any,
        *,
        password: Password = None,
        encryption: str | None = "default",
        compression: str | None = "default",
        compression_level: int | None = None,
        chunker: ChunkerParams | None = None,
        pack_size: int = DEFAULT_PACK_SIZE,
        store_options: Mapping[str, str] | None = None,
        plugins: PluginRegistry | None = None,
        cache: CacheChoice = None,
        kdf_profile: str | None = None,
    ) -> Repository:
        """Create a repository at ``location`` (a path, a URL, a store or a mapping).

        Encryption is on unless ``encryption="none"``; it then needs a ``password``. The one
        exception is a plain in-process ``dict`` given no password: nothing in it is at rest
        anywhere, so ``Repository.init({})`` makes an unencrypted repository (for tests and
        scripts that swap a real store for a dict). ``kdf_profile`` names the key-derivation
        settings of the first key slot (see ``KDF_PROFILES`` in :mod:`kvbackup.format.keyslots`).
        """
        return cls(
            RepoCore.create(
                location,
                password=password,
                encryption=encryption,
                compression=compression,
                compression_level=compression_level,
                chunker=chunker,
                pack_size=pack_size,
                store_options=store_options,
                plugins=plugins,
                cache=cache,
                kdf_profile=kdf_profile,
            )
        )

    @classmethod
    def open(
        cls,
        location: Any,
        *,
        password: Password = None,
        store_options: Mapping[str, str] | None = None,
        plugins: PluginRegistry | None = None,
        expect_encrypted: bool | None = None,
        cache: CacheChoice = None,
    ) -> Repository:
        """Open the repository at ``location``; ``password`` if it is encrypted.

        A repository that turns out not to be encrypted is refused when
        ``expect_encrypted`` is true (by default: when a password string was given), since
        an attacker who can write to the store could have replaced an encrypted
        repository's config and key slots with unencrypted ones (see ``docs/security.md``).

        ``cache``: the local metadata cache (``docs/lifecycle.md``); by default on for a
        path or URL (unless ``$KVBACKUP_NO_CACHE``), off for a store or mapping; ``False``,
        ``True``, or the cache's root folder.
        """
        return cls(
            RepoCore.open(
                location,
                password=password,
                store_options=store_options,
                plugins=plugins,
                expect_encrypted=expect_encrypted,
                cache=cache,
            )
        )

    @property
    def config(self) -> RepoConfig:
        """The settings the repository was created with."""
        return self.core.config

    @property
    def location(self) -> str:
        """Where the repository is, as given (or the store's description)."""
        return self.core.location

    @property
    def damage(self) -> DamageLog:
        """Damage worked around so far (an unreadable snapshot record or index fragment
        left out, ...): ``.messages``; add a callable to ``.listeners`` to hear of it as it
        is found."""
        return self.core.damage

    def close(self) -> None:
        """Release the store and worker threads."""
        self.core.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- passwords

    def add_password(
        self, password: str | bytes, label: str = "", kdf_profile: str | None = None
    ) -> str:
        """Add a key slot opening this repository with ``password``; return its id.
        ``kdf_profile`` defaults to that of the slot this repository was opened with."""
        return self.core.add_password(password, label, kdf_profile)

    @property
    def slot_id(self) -> str | None:
        """The key slot the password opened (or ``init`` made); ``None`` if unencrypted."""
        return self.core.slot_id

    def key_slots(self) -> list[dict[str, Any]]:
        """The key slots: id, label, KDF profile and parameters, ``in_use`` (the slot the
        password opened); a damaged slot has ``damaged`` set to what is wrong with it (and no
        other fields but ``id``)."""
        return self.core.key_slots()

    def remove_key_slot(self, slot_id: str) -> None:
        """Remove a key slot (a damaged one too); neither the last intact one nor the one
        the password opened can be removed."""
        self.core.remove_key_slot(slot_id)

    # ----------------------------------------------------------------- snapshots

    def snapshots(self) -> list[Snapshot]:
        """Every snapshot, complete and incomplete, oldest first."""
        return self.core.snapshots()

    def resolve_snapshot(
        self,
        spec: str | Snapshot,
        complete_only: bool = True,
        select: SnapshotFilter | None = None,
    ) -> Snapshot:
        """The snapshot named ``spec``: ``latest``, an id, or a unique id prefix, among
        those ``select`` matches (``--host``, ``--tag``, ``--path``)."""
        return self.core.resolve_snapshot(spec, complete_only, select)

    @reads_lazily("ls")
    def entries(self, snapshot: str | Snapshot) -> Iterator[Entry]:
        """The entries (files, folders, symlinks) of ``snapshot``, streamed in its order."""
        return self.core.iter_entries(self.resolve_snapshot(snapshot))

    # ----------------------------------------------------------------- operations

    def backup(
        self,
        source: Any,
        *,
        full: bool = False,
        rehash: bool = False,
        source_type: str | None = None,
        source_options: Mapping[str, str] | None = None,
        compression: str | None = None,
        progress: Progress | None = None,
        host: str | None = None,
        tags: Iterable[str] = (),
        executor: Any = None,
        trusted_network: bool = False,
        excludes: ExcludeRules | None = None,
        exclude: Iterable[str] = (),
        dry_run: bool = False,
    ) -> BackupResult:
        """Back ``source`` up: a path, a list of paths (folders and files, each kept under
        its absolute path), an iterable of (name, content) where content is bytes, a binary
        file or a callable returning one, or anything a source plugin accepts. Incremental
        unless ``full``; ``excludes`` (or just ``exclude`` patterns) leave things out;
        ``dry_run`` only reports what would be read. See :func:`kvbackup.ops.backup.run_backup`.

        With ``executor`` (a ``distributed.Client``) the files are read, chunked and stored
        by the cluster's workers and committed here as one snapshot; the key travels with
        the tasks, so a cluster reached over plain TCP beyond loopback is refused unless
        ``trusted_network`` (see ``docs/distributed.md`` and
        :func:`kvbackup.ops.distbackup.run_distributed_backup`)."""
        if exclude:
            rules = excludes or ExcludeRules()
            excludes = ExcludeRules(**{**vars(rules), "patterns": rules.patterns + list(exclude)})
        if executor is not None:
            if dry_run:
                raise UsageError("a dry run is not distributed: leave out the executor (--dask)")
            return run_distributed_backup(
                self.core,
                source,
                executor,
                trusted_network=trusted_network,
                full=full,
                rehash=rehash,
                source_type=source_type,
                source_options=source_options,
                compression=compression,
                progress=progress,
                host=host,
                tags=list(tags),
                excludes=excludes,
            )
        return run_backup(
            self.core,
            source,
            full=full,
            rehash=rehash,
            source_type=source_type,
            source_options=source_options,
            compression=compression,
            progress=progress,
            host=host,
            tags=list(tags),
            excludes=excludes,
            dry_run=dry_run,
        )

    @reads("restore")
    def restore(
        self,
        snapshot: str | Snapshot,
        target: str | os.PathLike[str],
        *,
        paths: Iterable[str | bytes] = (),
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        progress: Progress | None = None,
        overwrite: str = "if-newer",
        delete: bool = False,
        dry_run: bool = False,
        verify: bool = False,
        target_options: Mapping[str, str] | None = None,
        writers: int | None = None,
    ) -> RestoreResult:
        """Restore ``snapshot`` (or the selected paths of it) under ``target``.

        ``overwrite`` says what happens to entries already in the target (``always``,
        ``if-changed``, ``if-newer``, ``never``; see :mod:`kvbackup.ops.overwrite`); ``delete``
        removes what the target holds (below the selection) that the snapshot does not;
        ``dry_run`` only reports what would be written and deleted; ``verify`` reads every
        written file back and checks it against its chunk ids before it takes its name.
        ``writers``: how many threads write files at once (``0``: one thread writes every
        file, in order; ``None``: the default, see docs/backup-and-restore.md).
        A ``target`` that is a URL (``s3://bucket/prefix``, ``fsspec::URL``) is written
        through the source plugin serving it (``target_options`` are its options).
        """
        if isinstance(target, str) and ("://" in target or target.startswith("fsspec::")):
            return restore_to_url(
                self.core,
                self.resolve_snapshot(snapshot),
                target,
                dict(target_options or {}),
                paths=list(paths),
                include=list(include),
                exclude=list(exclude),
                progress=progress,
                verify=verify,
            )
        return run_restore(
            self.core,
            self.resolve_snapshot(snapshot),
            target,
            paths=list(paths),
            include=list(include),
            exclude=list(exclude),
            progress=progress,
            overwrite_policy=overwrite,
            delete=delete,
            dry_run=dry_run,
            verify=verify,
            **({} if writers is None else {"writers": writers}),
        )

    @reads("verify")
    def verify(
        self,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        read_data_subset: float = 100.0,
        use_cache: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> VerifyResult:
        """Check the structure, then read packs not verified within ``max_age`` seconds
        (all with ``use_cache=False``; a ``read_data_subset`` percentage of them at most);
        see :mod:`kvbackup.ops.verify`."""
        return run_verify(
            self.core,
            max_age=max_age,
            read_data_subset=read_data_subset,
            use_cache=use_cache,
            cache_dir=cache_dir,
            progress=progress,
        )

    @reads("verify")
    def verify_full(
        self,
        source: str | os.PathLike[str],
        snapshot: str | Snapshot | None = None,
        *,
        temp_dir: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> FullVerifyResult:
        """Restore ``snapshot`` (default: the latest of ``source``) into a temporary folder
        and compare it with the folder ``source``; see :mod:`kvbackup.ops.fullverify`."""
        return run_verify_full(self.core, source, snapshot, temp_dir=temp_dir, progress=progress)

    # ----------------------------------------------------------------- lifecycle

    def forget(
        self,
        policy: RetentionPolicy | None = None,
        snapshots: Iterable[str] = (),
        *,
        group_by: Iterable[str] = ("host", "source"),
        select: SnapshotFilter | None = None,
        dry_run: bool = False,
        allow_empty: bool = False,
        prune: bool = False,
        max_unused: float | None = None,
        progress: Progress | None = None,
    ) -> ForgetResult:
        """Remove the snapshots named, or those ``policy`` does not keep; with ``prune``,
        then free what they alone used (telling ``progress``). See
        :mod:`kvbackup.ops.forget`."""
        return run_forget(
            self.core,
            policy,
            list(snapshots),
            group_by=tuple(group_by),
            select=select,
            dry_run=dry_run,
            allow_empty=allow_empty,
            prune=prune,
            prune_options={"progress": progress}
            | ({} if max_unused is None else {"max_unused": max_unused}),
        )

    def prune(
        self,
        *,
        max_unused: float | None = None,
        dry_run: bool = False,
        force: bool = False,
        progress: Progress | None = None,
    ) -> PruneResult:
        """Delete groups no snapshot uses and repack partly used packs, telling
        ``progress`` how far it got; see :mod:`kvbackup.ops.prune`."""
        return run_prune(
            self.core,
            max_unused=DEFAULT_MAX_UNUSED if max_unused is None else max_unused,
            dry_run=dry_run,
            force=force,
            progress=progress,
        )

    def read_lock(self, operation: str) -> contextlib.AbstractContextManager[None]:
        """Hold a read lock while reading (``operation`` names it for others): a prune does
        not start meanwhile, and this waits while one runs. The reading methods take it
        themselves; hold it around :meth:`browse` or several calls to share one lock."""
        return self._read_locks.hold(operation)

    def unlock(self, remove_all: bool = False) -> list[RemovedLock]:
        """Remove stale locks (all locks with ``remove_all``); return what was removed."""
        return remove_stale_locks(self.core, everything=remove_all)

    @reads("diff")
    def diff(self, before: str | Snapshot, after: str | Snapshot) -> DiffResult:
        """What changed from snapshot ``before`` to snapshot ``after``."""
        return run_diff(self.core, self.resolve_snapshot(before), self.resolve_snapshot(after))

    @reads("stats")
    def stats(self, snapshot: str | Snapshot | None = None) -> Stats:
        """Sizes and counts of the repository, or of one snapshot."""
        if snapshot is None:
            return repository_stats(self.core)
        return snapshot_stats(self.core, self.resolve_snapshot(snapshot))

    def repair_index(self, groups: Iterable[str] = (), dry_run: bool = False) -> RepairResult:
        """Index the packs no readable index fragment names, from their trailers, and set
        aside unreadable fragments, under the exclusive lock (refused while a backup runs;
        a dry run only reads, under a read lock); see :mod:`kvbackup.ops.repair`."""
        # repair what the store holds, not cached copies
        with self._dry_run_lock(dry_run), self.core.bypassing_cache():
            return repair_index(self.core, list(groups), dry_run)

    def repair_snapshots(self, dry_run: bool = False) -> RepairResult:
        """Set aside unreadable snapshot records, under the exclusive lock (refused while a
        backup runs; a dry run reads under a read lock); see :mod:`kvbackup.ops.repair`."""
        with self._dry_run_lock(dry_run), self.core.bypassing_cache():
            return repair_snapshots(self.core, dry_run)

    def _dry_run_lock(self, dry_run: bool) -> contextlib.AbstractContextManager[None]:
        """A repair's dry run reads like ``verify``: under a read lock, so that a prune
        does not delete what it is reading and report it missing."""
        return self.read_lock("repair") if dry_run else contextlib.nullcontext()

    @reads_lazily("cat")
    def cat(self, snapshot: str | Snapshot, path: str | bytes) -> Iterator[bytes]:
        """The content of the file ``path`` of ``snapshot``, as a stream of verified chunks
        (``b"".join(repo.cat(...))`` for the bytes)."""
        return cat_file(self.core, self.resolve_snapshot(snapshot), path)

    # ----------------------------------------------------------------- day-to-day use

    def _chosen(self, snapshots: Iterable[str | Snapshot] | None) -> list[Snapshot]:
        if snapshots is None:
            return [s for s in self.snapshots() if s.complete]
        return [self.resolve_snapshot(s) for s in snapshots]

    @reads_lazily("find")
    def find(
        self,
        patterns: Iterable[str],
        *,
        snapshots: Iterable[str | Snapshot] | None = None,
        ignore_case: bool = False,
        newest_ns: int | None = None,
        oldest_ns: int | None = None,
    ) -> Iterator[FindMatch]:
        """Entries whose name matches one of the glob ``patterns`` (a pattern with ``/``:
        whose path), in ``snapshots`` (default: every complete one), modified within
        ``[oldest_ns, newest_ns]``; see :mod:`kvbackup.ops.find`."""
        pattern = NamePattern(patterns, ignore_case)
        return find_names(self.core, self._chosen(snapshots), pattern, newest_ns, oldest_ns)

    @reads_lazily("find")
    def find_chunks(
        self, chunk_ids: Iterable[str], *, snapshots: Iterable[str | Snapshot] | None = None
    ) -> Iterator[FindMatch]:
        """Files holding a chunk whose hex id starts with one of ``chunk_ids``."""
        return find_chunks(self.core, self._chosen(snapshots), chunk_ids)

    def copy_from(
        self,
        source: Repository,
        snapshots: Iterable[str | Snapshot] | None = None,
        *,
        progress: Progress | None = None,
    ) -> CopyResult:
        """Copy ``snapshots`` (default: every complete one) of ``source`` into this
        repository, skipping those it has; see :mod:`kvbackup.ops.copy`. It holds a read
        lock on ``source`` and a shared lock on this repository (no forget or prune runs
        on either meanwhile)."""
        with source.read_lock("copy"):
            chosen = None if snapshots is None else source._chosen(snapshots)
            return run_copy(source.core, self.core, chosen, progress=progress)

    def browse(self, cache_bytes: int = DEFAULT_CACHE_BYTES) -> SnapshotTree:
        """The snapshots as a read-only folder tree (what ``kvbackup mount`` serves)."""
        return SnapshotTree(self.core, cache_bytes=cache_bytes)

    @property
    def requests(self) -> dict[str, int]:
        """The store requests made so far: GET, PUT, LIST and DELETE counts, bytes moved."""
        return self.core.counts.as_dict()
