"""RepoCore locks: one exclusive holder (forget, prune, repair), or any number of backups
and readers (restore, ls, cat, find, verify, mount, diff, stats, copy's source, and a copy's
target: a copy writing into a repository holds a reader's lock there, operation ``copy``).

``locks/exclusive`` is written with a conditional write where the store honours one; on
other stores an exclusive holder writes ``locks/exclusive-<hex>`` and then lists ``locks/``:
if it sees another live exclusive lock, it removes its own and gives up (two racing
holders both give up; neither proceeds). A backup writes ``locks/backup-<hex>`` naming its
host and source and never waits for another backup; a reader writes ``locks/read-<hex>``.
Both wait while a live exclusive lock is held; an exclusive holder refuses to start while a
reader holds its lock (it could delete packs the reader is about to fetch), as restic does,
and a repair also while a backup holds one (it could set aside or index what the backup
is writing).
Every lock is refreshed (rewritten with a new time) every :data:`REFRESH_EVERY` seconds
while held and is *stale* once not refreshed for its stated ``lifetime``, or at once if its
process is gone from this host. The next acquirer removes a stale lock it meets, saying so
on the ``kvbackup.locks`` logger. Why this keeps an in-flight backup safe from a prune:
``docs/format.md``.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from ..errors import CorruptionError, KeyNotFoundError, KvbackupError, LockedError
from ..format.envelope import ObjectType

if TYPE_CHECKING:
    from .repo import RepoCore

PREFIX = "locks/"
EXCLUSIVE_KEY = "locks/exclusive"
EXCLUSIVE = "exclusive"
BACKUP = "backup"
READ = "read"
#: The operation of the shared lock a copy holds on its target: a reader's lock, so that
#: every version that knows read locks refuses to prune under it.
COPY = "copy"
KINDS = (EXCLUSIVE, BACKUP, READ)
REFRESH_EVERY = 5 * 60.0
#: A lock's lifetime: stale once not refreshed for this long (stated in each lock object).
STALE_AFTER = 30 * 60.0
WAIT_POLL = 2.0

log = logging.getLogger(__name__)


@dataclass
class LockInfo:
    """What a lock object says: who holds it, for what, since when."""

    kind: str  # "exclusive", "backup" or "read"
    operation: str  # "prune", "forget", "backup", "restore", ...
    host: str
    pid: int
    user: str
    created: float
    refreshed: float
    source: str = ""  # backups: the source they write (with ``host``)
    #: Seconds after ``refreshed`` at which it is stale (older locks: :data:`STALE_AFTER`).
    lifetime: float = STALE_AFTER
    token: str = ""  # random, to tell this holder's object from a successor's
    #: The machine the holder runs on (``host`` may be a backup's ``--host`` name instead).
    machine: str = ""
    key: str = ""  # where it is stored (not part of the object)

    def to_json(self) -> bytes:
        data = asdict(self)
        data.pop("key")
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes, key: str) -> LockInfo:
        try:
            data = json.loads(raw)
            info = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data}, key=key)
            if info.kind not in KINDS:
                raise ValueError(f"unknown lock kind {info.kind!r}")
            if not (info.lifetime > 0):
                raise ValueError(f"lifetime {info.lifetime!r} is not positive")
            return info
        except (ValueError, TypeError, KeyError) as exc:
            raise CorruptionError(f"{key}: malformed lock ({exc})") from None

    def age(self, now: float | None = None) -> float:
        """Seconds since it was last refreshed."""
        return max(0.0, (time.time() if now is None else now) - self.refreshed)

    def stale(self, now: float | None = None) -> bool:
        """Not refreshed for its ``lifetime``, or its process is gone from this host."""
        return bool(self.why_stale(now))

    def why_stale(self, now: float | None = None) -> str:
        """Why it is stale (``""``: it is not)."""
        if self.age(now) > self.lifetime:
            return f"not refreshed for longer than its lifetime of {_age_text(self.lifetime)}"
        if (self.machine or self.host) == socket.gethostname() and not _pid_alive(self.pid):
            return f"process {self.pid} is gone from this host"
        return ""

    def same_holder(self, other: LockInfo) -> bool:
        """Both name the same holder at the same refresh (the object did not change)."""
        return (self.token, self.host, self.pid, self.created, self.refreshed) == (
            other.token,
            other.host,
            other.pid,
            other.created,
            other.refreshed,
        )

    def describe(self) -> str:
        what = f"{self.operation} lock" + (f" ({self.source})" if self.source else "")
        return (
            f"{what} held by pid {self.pid} on {self.host}, "
            f"refreshed {_age_text(self.age())} ago, "
            f"created {_age_text(time.time() - self.created)} ago"
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _age_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def is_lock_key(key: str) -> bool:
    name = key[len(PREFIX) :] if key.startswith(PREFIX) else ""
    return name == EXCLUSIVE or name.startswith(tuple(kind + "-" for kind in KINDS))


def read_lock(repo: RepoCore, key: str) -> LockInfo | None:
    """The lock at ``key``; ``None`` if it was removed meanwhile."""
    try:
        return LockInfo.from_json(repo.get_object(key, ObjectType.LOCK), key)
    except KeyNotFoundError:
        return None


UNREADABLE = "unreadable"


def remove_if_stale(repo: RepoCore, info: LockInfo) -> bool:
    """Remove ``info``'s lock if it is stale and unchanged since it was read; say so on
    :data:`log`. An unreadable lock is left for ``kvbackup unlock`` (whose it is is unknown).
    """
    why = info.why_stale()
    if not why or info.operation == UNREADABLE:
        return False
    if info.key == EXCLUSIVE_KEY:  # a fixed name: make sure a successor did not take it
        try:
            current = read_lock(repo, info.key)
        except CorruptionError:
            return False
        if current is None or not current.same_holder(info):
            return False
    repo.store.delete(info.key)
    log.warning("removed a stale lock: %s (%s)", info.describe(), why)
    return True


def list_locks(repo: RepoCore, kinds: tuple[str, ...] = KINDS) -> list[LockInfo]:
    """Every lock of the given kinds (the kind is in the key: only those are read).

    An unreadable (damaged) lock is reported as a stale exclusive one: it blocks nobody and
    ``unlock`` removes it.
    """
    keys = [
        k
        for k in repo.store.list(PREFIX)
        if is_lock_key(k) and k[len(PREFIX) :].split("-", 1)[0] in kinds
    ]

    def load(key: str) -> LockInfo | None:
        try:
            return read_lock(repo, key)
        except CorruptionError:
            return LockInfo(EXCLUSIVE, UNREADABLE, "?", 0, "", 0.0, 0.0, key=key)

    return [info for info in repo.map_parallel(load, keys) if info is not None]


class RepositoryLock:
    """A lock this process holds: refreshed on a thread until :meth:`release`."""

    def __init__(self, repo: RepoCore, info: LockInfo, refresh_every: float | None = None):
        self.repo = repo
        self.info = info
        self.busy: list[LockInfo] = []  # live backup locks seen when an exclusive lock was taken
        self.lost = ""  # why the lock is no longer this process's (removed by another)
        self._last_ok = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._refresh_loop,
            args=(REFRESH_EVERY if refresh_every is None else refresh_every,),
            daemon=True,
            name="kvbackup-lock",
        )
        self._thread.start()

    def _refresh_loop(self, every: float) -> None:
        while not self._stop.wait(every):
            with contextlib.suppress(KvbackupError):
                self.refresh()

    def _still_mine(self) -> bool:
        """Is the stored lock still this process's? (Another may have removed it as stale,
        after this one was suspended for longer than its lifetime.)"""
        if self.info.key == EXCLUSIVE_KEY:
            try:
                current = read_lock(self.repo, self.info.key)
            except CorruptionError:
                return False
            return current is not None and current.token == self.info.token
        return self.repo.store.exists(self.info.key)

    def refresh(self) -> None:
        """Rewrite the lock with a new time, unless it was removed meanwhile."""
        if self.lost:
            return
        if not self._still_mine():
            self.lost = f"the lock {self.info.key} was removed by another process meanwhile"
            return
        self.info.refreshed = time.time()
        self.repo.put_object(self.info.key, ObjectType.LOCK, self.info.to_json())
        self._last_ok = time.monotonic()

    def check(self) -> None:
        """Raise if the lock may have gone stale (not refreshed in time) or was removed:
        another process could then have taken over, and what this one was about to do is
        no longer safe."""
        if self.lost:
            raise LockedError(f"{self.lost}: stopping before doing anything unsafe; run the "
                              "command again")  # fmt: skip
        if time.monotonic() - self._last_ok > self.info.lifetime * 0.9:
            raise LockedError(
                f"the repository lock {self.info.key} was not refreshed for "
                f"{_age_text(time.monotonic() - self._last_ok)} (suspended? store unreachable?): "
                "stopping before doing anything unsafe; run the command again"
            )

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(KvbackupError):
            # Under the fixed name, delete only this process's own object, not a successor's.
            if self.info.key != EXCLUSIVE_KEY or self._still_mine():
                self.repo.store.delete(self.info.key)

    def __enter__(self) -> RepositoryLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _new_info(kind: str, operation: str, source: str = "", host: str | None = None) -> LockInfo:
    try:
        user = getpass.getuser()
    except Exception:
        user = ""
    now = time.time()
    return LockInfo(
        kind,
        operation,
        host or socket.gethostname(),
        os.getpid(),
        user,
        now,
        now,
        source,
        lifetime=STALE_AFTER,
        token=secrets.token_hex(16),
        machine=socket.gethostname(),
    )


def acquire_exclusive(
    repo: RepoCore, operation: str, *, refuse_backups: bool = False
) -> RepositoryLock:
    """Take the exclusive lock, or raise :class:`LockedError` naming who holds it (another
    exclusive holder, or a reader: a prune must not delete packs a restore is reading; with
    ``refuse_backups``, a running backup too). Stale locks met on the way are removed (and
    logged).

    The lock returned lists in ``busy`` the live backup locks seen once it was held: those
    backups may still use whatever their host and source's groups contain.
    """
    info = _new_info(EXCLUSIVE, operation)

    def blob_of(i: LockInfo) -> bytes:
        return repo.codec.encode(ObjectType.LOCK, i.key.encode(), i.to_json())

    if repo.store.supports_put_if_absent:
        info.key = EXCLUSIVE_KEY
        _put_fixed(repo, info, blob_of(info))
    else:
        info.key = f"{PREFIX}{EXCLUSIVE}-{secrets.token_hex(16)}"
        repo.store.put(info.key, blob_of(info))
    lock = RepositoryLock(repo, info)
    try:
        others = [o for o in list_locks(repo) if o.key != info.key]
        live = [o for o in others if not remove_if_stale(repo, o) and not o.stale()]
        rival = next((o for o in live if o.kind == EXCLUSIVE), None)
        if rival is not None:
            raise LockedError(f"the repository is locked: {rival.describe()}")
        reader = next((o for o in live if o.kind == READ), None)
        if reader is not None:
            harm = "data it uses" if reader.operation == COPY else "data it is reading"
            raise LockedError(
                f"the repository is in use: {reader.describe()}; {operation} could delete "
                f"{harm}: run it again when that has finished"
            )
        writer = next((o for o in live if o.kind == BACKUP), None)
        if refuse_backups and writer is not None:
            raise LockedError(
                f"the repository is in use: {writer.describe()}; {operation} could change "
                "what it is writing: run it again when that has finished"
            )
        lock.busy = [o for o in live if o.kind == BACKUP]
    except BaseException:
        lock.release()
        raise
    return lock


def _put_fixed(repo: RepoCore, info: LockInfo, blob: bytes) -> None:
    """Write ``locks/exclusive`` with a conditional write, removing a stale holder first."""
    for _ in range(3):
        if repo.store.put_if_absent(info.key, blob):
            return
        try:
            holder = read_lock(repo, info.key)
        except CorruptionError as exc:
            raise LockedError(
                f"the repository is locked ({exc}; `kvbackup unlock --remove-all`)"
            ) from None
        if holder is not None and not remove_if_stale(repo, holder) and not holder.stale():
            raise LockedError(f"the repository is locked: {holder.describe()}")
    raise LockedError("the repository is locked by another process (just taken)")


def _acquire_shared(
    repo: RepoCore, info: LockInfo, on_wait: Callable[[LockInfo], None] | None
) -> RepositoryLock:
    """Write a shared lock (backup or read), then wait while a live exclusive lock is held,
    removing stale ones."""
    info.key = f"{PREFIX}{info.kind}-{secrets.token_hex(16)}"
    repo.put_object(info.key, ObjectType.LOCK, info.to_json())
    lock = RepositoryLock(repo, info)
    try:
        told = False
        while True:
            holders = [
                o
                for o in list_locks(repo, (EXCLUSIVE,))
                if not remove_if_stale(repo, o) and not o.stale()
            ]
            if not holders:
                return lock
            if not told:
                (on_wait or _log_wait)(holders[0])
                told = True
            time.sleep(WAIT_POLL)
    except BaseException:
        lock.release()
        raise


def _log_wait(holder: LockInfo) -> None:
    log.warning("waiting for the repository: %s", holder.describe())


def acquire_backup(
    repo: RepoCore,
    host: str,
    source: str,
    on_wait: Callable[[LockInfo], None] | None = None,
) -> RepositoryLock:
    """Announce a backup of ``source`` from ``host``; wait while a live exclusive lock
    (a forget or prune) is held, then return. Backups never wait for each other."""
    return _acquire_shared(repo, _new_info(BACKUP, "backup", source, host), on_wait)


def acquire_read(
    repo: RepoCore, operation: str, on_wait: Callable[[LockInfo], None] | None = None
) -> RepositoryLock:
    """Announce a reader (``operation``: "restore", "ls", ...), so no prune starts while it
    reads; wait while a live exclusive lock is held, then return."""
    return _acquire_shared(repo, _new_info(READ, operation), on_wait)


def acquire_copy(
    repo: RepoCore, on_wait: Callable[[LockInfo], None] | None = None
) -> RepositoryLock:
    """Announce a copy into ``repo`` (its target), so no forget or prune starts while it
    writes: it deduplicates against the packs already there, which a prune could delete.
    The lock is a reader's (operation :data:`COPY`); it waits while a live exclusive lock
    is held, then returns."""
    return _acquire_shared(repo, _new_info(READ, COPY), on_wait)


@dataclass
class RemovedLock:
    key: str
    host: str
    pid: int
    operation: str
    age: float


def remove_stale_locks(repo: RepoCore, everything: bool = False) -> list[RemovedLock]:
    """Remove stale locks (every lock with ``everything``); return what was removed."""
    removed = []
    for info in list_locks(repo):
        if everything or info.stale():
            repo.store.delete(info.key)
            removed.append(RemovedLock(info.key, info.host, info.pid, info.operation, info.age()))
    return removed
