"""RepoCore locks: one exclusive holder (forget, prune) or any number of backups.

``locks/exclusive`` is written with a conditional write where the store honours one; on
other stores an exclusive holder writes ``locks/exclusive-<hex>`` and then lists ``locks/``:
if it sees another live exclusive lock, it removes its own and gives up (two racing
holders both give up; neither proceeds). A backup writes ``locks/backup-<hex>`` naming its
host and source and never waits for another backup. Every lock is refreshed (rewritten
with a new time) every :data:`REFRESH_EVERY` seconds while held and is *stale* once not
refreshed for :data:`STALE_AFTER` seconds, or at once if its process is gone from this
host. Why this keeps an in-flight backup safe from a prune: ``docs/format.md``.
"""

from __future__ import annotations

import contextlib
import getpass
import json
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
REFRESH_EVERY = 5 * 60.0
STALE_AFTER = 30 * 60.0
WAIT_POLL = 2.0


@dataclass
class LockInfo:
    """What a lock object says: who holds it, for what, since when."""

    kind: str  # "exclusive" or "backup"
    operation: str  # "prune", "forget", "backup", ...
    host: str
    pid: int
    user: str
    created: float
    refreshed: float
    source: str = ""  # backups: the source they write (with ``host``)
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
            if info.kind not in (EXCLUSIVE, BACKUP):
                raise ValueError(f"unknown lock kind {info.kind!r}")
            return info
        except (ValueError, TypeError, KeyError) as exc:
            raise CorruptionError(f"{key}: malformed lock ({exc})") from None

    def age(self, now: float | None = None) -> float:
        """Seconds since it was last refreshed."""
        return max(0.0, (time.time() if now is None else now) - self.refreshed)

    def stale(self, now: float | None = None, stale_after: float = STALE_AFTER) -> bool:
        """Not refreshed for ``stale_after`` seconds, or its process is gone from this host."""
        if self.age(now) > stale_after:
            return True
        return self.host == socket.gethostname() and not _pid_alive(self.pid)

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
    return name == EXCLUSIVE or name.startswith((EXCLUSIVE + "-", BACKUP + "-"))


def read_lock(repo: RepoCore, key: str) -> LockInfo | None:
    """The lock at ``key``; ``None`` if it was removed meanwhile."""
    try:
        return LockInfo.from_json(repo.get_object(key, ObjectType.LOCK), key)
    except KeyNotFoundError:
        return None


def list_locks(repo: RepoCore, kinds: tuple[str, ...] = (EXCLUSIVE, BACKUP)) -> list[LockInfo]:
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
            return LockInfo(EXCLUSIVE, "unreadable", "?", 0, "", 0.0, 0.0, key=key)

    return [info for info in repo.map_parallel(load, keys) if info is not None]


class RepositoryLock:
    """A lock this process holds: refreshed on a thread until :meth:`release`."""

    def __init__(self, repo: RepoCore, info: LockInfo, refresh_every: float = REFRESH_EVERY):
        self.repo = repo
        self.info = info
        self.busy: list[LockInfo] = []  # live backup locks seen when an exclusive lock was taken
        self._last_ok = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._refresh_loop, args=(refresh_every,), daemon=True, name="kvbackup-lock"
        )
        self._thread.start()

    def _refresh_loop(self, every: float) -> None:
        while not self._stop.wait(every):
            with contextlib.suppress(KvbackupError):
                self.refresh()

    def refresh(self) -> None:
        self.info.refreshed = time.time()
        self.repo.put_object(self.info.key, ObjectType.LOCK, self.info.to_json())
        self._last_ok = time.monotonic()

    def check(self) -> None:
        """Raise if the lock may have gone stale (not refreshed in time): another process
        could then have taken over, and what this one was about to do is no longer safe."""
        if time.monotonic() - self._last_ok > STALE_AFTER * 0.9:
            raise LockedError(
                f"the repository lock {self.info.key} was not refreshed for "
                f"{_age_text(time.monotonic() - self._last_ok)} (suspended? store unreachable?): "
                "stopping before doing anything unsafe; run the command again"
            )

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(KvbackupError):
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
        kind, operation, host or socket.gethostname(), os.getpid(), user, now, now, source
    )


def acquire_exclusive(repo: RepoCore, operation: str) -> RepositoryLock:
    """Take the exclusive lock, or raise :class:`LockedError` naming who holds it.

    The lock returned lists in ``busy`` the live backup locks seen once it was held: those
    backups may still use whatever their host and source's groups contain.
    """
    info = _new_info(EXCLUSIVE, operation)

    def blob_of(i: LockInfo) -> bytes:
        return repo.codec.encode(ObjectType.LOCK, i.key.encode(), i.to_json())

    if repo.store.supports_put_if_absent:
        info.key = EXCLUSIVE_KEY
        if not repo.store.put_if_absent(info.key, blob_of(info)):
            try:
                holder = read_lock(repo, info.key)
            except CorruptionError as exc:
                raise LockedError(
                    f"the repository is locked ({exc}; `kvbackup unlock --remove-all`)"
                ) from None
            if holder is not None:
                hint = (
                    " (stale: if that process is gone, remove it with `kvbackup unlock`)"
                    if holder.stale()
                    else ""
                )
                raise LockedError(f"the repository is locked: {holder.describe()}{hint}")
            if not repo.store.put_if_absent(info.key, blob_of(info)):
                raise LockedError("the repository is locked by another process (just taken)")
    else:
        info.key = f"{PREFIX}{EXCLUSIVE}-{secrets.token_hex(16)}"
        repo.store.put(info.key, blob_of(info))
    lock = RepositoryLock(repo, info)
    try:
        others = [o for o in list_locks(repo) if o.key != info.key and not o.stale()]
        rival = next((o for o in others if o.kind == EXCLUSIVE), None)
        if rival is not None:
            raise LockedError(f"the repository is locked: {rival.describe()}")
        lock.busy = [o for o in others if o.kind == BACKUP]
    except BaseException:
        lock.release()
        raise
    return lock


def acquire_backup(
    repo: RepoCore,
    host: str,
    source: str,
    on_wait: Callable[[LockInfo], None] | None = None,
) -> RepositoryLock:
    """Announce a backup of ``source`` from ``host``; wait while a live exclusive lock
    (a forget or prune) is held, then return. Backups never wait for each other."""
    info = _new_info(BACKUP, "backup", source, host)
    info.key = f"{PREFIX}{BACKUP}-{secrets.token_hex(16)}"
    repo.put_object(info.key, ObjectType.LOCK, info.to_json())
    lock = RepositoryLock(repo, info)
    try:
        told = False
        while True:
            holders = [o for o in list_locks(repo, (EXCLUSIVE,)) if not o.stale()]
            if not holders:
                return lock
            if on_wait and not told:
                on_wait(holders[0])
                told = True
            time.sleep(WAIT_POLL)
    except BaseException:
        lock.release()
        raise


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
