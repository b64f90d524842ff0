"""Read locks for the facade's reading methods (restore, ls, cat, find, verify, diff, ...).

As in restic, a command that reads packs holds a non-exclusive lock while it reads, so a
prune (which refuses to start while a reader holds one) never deletes a pack under it.
One :class:`ReadLocks` per open repository: nested reading calls share the outer lock.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..errors import StoreError
from .locks import RepositoryLock, acquire_read

if TYPE_CHECKING:
    from .repo import RepoCore

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("kvbackup.locks")


class ReadLocks:
    """The read lock of one open repository, taken by the first reader, released by the
    last (a count, so nested and overlapping reads cost one lock)."""

    def __init__(self, core: RepoCore):
        self.core = core
        self._depth = 0
        self._lock: RepositoryLock | None = None
        self._mutex = threading.Lock()

    @contextlib.contextmanager
    def hold(self, operation: str) -> Iterator[None]:
        """Hold the read lock (waiting while a forget or prune holds the exclusive one).

        A store that refuses the lock's write (read-only media, a read-only credential) is
        read without one, with a warning: reading must not need write access. (A store that
        cannot be reached at all fails the reads that follow with their own error.)
        """
        with self._mutex:
            if self._depth == 0:
                try:
                    self._lock = acquire_read(self.core, operation)
                except StoreError as exc:
                    log.warning(
                        "reading without a lock (%s): a prune running meanwhile could "
                        "remove data this %s reads",
                        exc,
                        operation,
                    )
            self._depth += 1
        try:
            yield
        finally:
            with self._mutex:
                self._depth -= 1
                if self._depth == 0 and self._lock is not None:
                    self._lock.release()
                    self._lock = None


class _Reading(Protocol):
    def read_lock(self, operation: str) -> contextlib.AbstractContextManager[None]: ...


def reads(operation: str) -> Callable[[F], F]:
    """Decorate a facade method that reads the repository: it runs under a read lock."""

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def call(self: _Reading, *args: Any, **kwargs: Any) -> Any:
            with self.read_lock(operation):
                return method(self, *args, **kwargs)

        return call  # type: ignore[return-value]

    return wrap


def reads_lazily(operation: str) -> Callable[[F], F]:
    """As :func:`reads`, for a method returning an iterator: the lock is held until the
    iterator is exhausted, fails or is closed (the method itself still runs at once)."""

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def call(self: _Reading, *args: Any, **kwargs: Any) -> Any:
            held = self.read_lock(operation)
            held.__enter__()
            try:
                items = method(self, *args, **kwargs)
            except BaseException:
                held.__exit__(None, None, None)
                raise
            return _HeldIterator(items, held)

        return call  # type: ignore[return-value]

    return wrap


class _HeldIterator(Iterator[Any]):
    """Passes ``items`` through; releases ``held`` once they end (or on close / collection)."""

    def __init__(self, items: Iterator[Any], held: contextlib.AbstractContextManager[None]):
        self._items = iter(items)
        self._held: contextlib.AbstractContextManager[None] | None = held

    def __next__(self) -> Any:
        try:
            return next(self._items)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()
            held.__exit__(None, None, None)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
