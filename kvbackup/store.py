"""The store contract, the adapter for plain mappings, and the wrappers the engine adds.

A store holds bytes under short ASCII keys. Four primitives are required (``get``, ``put``,
``delete``, ``list``); the rest are optional capabilities a store declares, each with a
fallback built on the primitives. The engine never talks to a plugin's store directly: it
wraps it in :class:`RetryingStore` (transient errors are retried, then raised, never read as
"absent") and :class:`CountingStore` (request accounting).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import KeyNotFoundError, StoreError, TransientStoreError

T = TypeVar("T")

MAX_KEY_LENGTH = 512
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid repository key, else raise ``ValueError``.

    Keys are short ASCII paths: segments of letters, digits, ``.``, ``_`` and ``-`` joined
    by ``/``, no segment starting with a dot, at most :data:`MAX_KEY_LENGTH` characters.
    """
    if len(key) > MAX_KEY_LENGTH or not _KEY_RE.match(key):
        raise ValueError(f"invalid store key: {key!r}")
    return key


class Store(ABC):
    """A key/value store: the minimal contract every store plugin implements.

    ``get`` raises :class:`~kvbackup.errors.KeyNotFoundError` only when the store has
    answered that the key does not exist; any failure that might pass raises
    :class:`~kvbackup.errors.TransientStoreError`, any other failure
    :class:`~kvbackup.errors.StoreError`.
    """

    #: ``get_range`` reads a slice without fetching the whole value.
    supports_get_range: bool = False
    #: ``put_if_absent`` is an atomic conditional write.
    supports_put_if_absent: bool = False
    #: How many requests it is useful to have in flight at once.
    concurrency: int = 4
    #: A short human description used in error messages ("s3://bucket/prefix").
    description: str = "store"
    #: How long (seconds) one operation may take, retries included, before it fails for
    #: good; ``None``: the engine's default (see :class:`RetryPolicy`).
    deadline: float | None = None

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Return the value stored under ``key``."""

    @abstractmethod
    def put(self, key: str, value: bytes) -> None:
        """Store ``value`` under ``key``, replacing any earlier value, atomically."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing a key that is absent is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield every key that starts with ``prefix``, in any order."""

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Return ``length`` bytes of the value from ``start``; a negative ``start``
        counts from the end (``length`` is then ignored and the tail returned)."""
        data = self.get(key)
        if start < 0:
            return data[start:]
        return data[start : start + length]

    def put_if_absent(self, key: str, value: bytes) -> bool:
        """Store ``value`` unless ``key`` exists; return whether it was stored.

        The fallback checks then writes, which is not atomic across processes; stores that
        can do better set :attr:`supports_put_if_absent`.
        """
        if self.exists(key):
            return False
        self.put(key, value)
        return True

    def exists(self, key: str) -> bool:
        """Return whether ``key`` exists: a one-byte ranged GET (on S3 a HEAD could not tell
        a missing key from a missing bucket)."""
        try:
            self.get_range(key, 0, 1)
        except KeyNotFoundError:
            return False
        return True

    def remove_stale_temporaries(self, older_than: float) -> tuple[int, int]:
        """Remove what interrupted writes left behind (the temporary objects
        :meth:`list_temporary` names) older than ``older_than`` seconds; return (objects,
        bytes) removed."""
        cutoff = time.time() - older_than
        removed = size = 0
        for name, nbytes, mtime in list(self.list_temporary()):
            if mtime < cutoff:
                self.delete_temporary(name)
                removed += 1
                size += nbytes
        return removed, size

    def list_sizes(self, prefix: str = "") -> Iterator[tuple[str, int | None]]:
        """Like :meth:`list`, with each value's size where the listing tells it (``None``
        where it does not); verify checks every pack's size against it."""
        return ((key, None) for key in self.list(prefix))

    def list_temporary(self) -> Iterator[tuple[str, int, float]]:
        """Temporary objects this store's own writes left behind (a process killed before
        renaming one into place): ``(name, size in bytes, modification time)``. Names are
        paths below the root, not keys. Stores whose writes are atomic leave none."""
        return iter(())

    def delete_temporary(self, name: str) -> None:
        """Remove a temporary object that :meth:`list_temporary` named."""
        raise StoreError(f"{self.description}: keeps no temporary objects")

    def close(self) -> None:
        """Release connections and threads; the store is not used afterwards."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


class MappingStore(Store):
    """Adapts any ``MutableMapping[str, bytes]`` (a ``dict``, an fsspec mapper, ...).

    ``KeyError`` from the mapping means "absent"; every other exception is treated as
    transient, because a mapping cannot tell us otherwise and reading it as "absent" would
    lose data.
    """

    supports_put_if_absent = True  # atomic within this process, which owns the mapping

    def __init__(self, mapping: MutableMapping[str, bytes], description: str | None = None):
        self.mapping = mapping
        self.description = description or f"mapping {type(mapping).__name__}"
        self._lock = threading.Lock()

    def _call(self, op: str, key: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except KeyError:
            raise KeyNotFoundError(f"{key}: not found in {self.description}") from None
        except StoreError:
            raise
        except Exception as exc:
            raise TransientStoreError(f"{op} {key} on {self.description}: {exc}") from exc

    def get(self, key: str) -> bytes:
        return bytes(self._call("get", key, lambda: self.mapping[key]))

    def put(self, key: str, value: bytes) -> None:
        self._call("put", key, lambda: self.mapping.__setitem__(key, bytes(value)))

    def put_if_absent(self, key: str, value: bytes) -> bool:
        with self._lock:
            if key in self.mapping:
                return False
            self.put(key, value)
            return True

    def delete(self, key: str) -> None:
        with contextlib.suppress(KeyNotFoundError):
            self._call("delete", key, lambda: self.mapping.__delitem__(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        keys = self._call("list", prefix or "/", lambda: list(self.mapping.keys()))
        return (k for k in keys if k.startswith(prefix))

    def exists(self, key: str) -> bool:
        return bool(self._call("exists", key, lambda: key in self.mapping))

    def list_sizes(self, prefix: str = "") -> Iterator[tuple[str, int | None]]:
        items = self._call("list", prefix or "/", lambda: list(self.mapping.items()))
        return ((k, len(v)) for k, v in items if k.startswith(prefix))


DEADLINE_ENV = "KVBACKUP_STORE_DEADLINE"
DEFAULT_DEADLINE = 30.0


def default_deadline() -> float:
    """``$KVBACKUP_STORE_DEADLINE`` (seconds) if set to a positive number, else 30."""
    try:
        value = float(os.environ.get(DEADLINE_ENV, "") or DEFAULT_DEADLINE)
    except ValueError:
        return DEFAULT_DEADLINE
    return value if 0 < value < float("inf") else DEFAULT_DEADLINE


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter, within a deadline per operation.

    No new attempt starts once ``deadline`` seconds have passed since the first (a store's
    own :attr:`Store.deadline` takes precedence), so an operation against a server that
    stopped answering fails after about the deadline plus one request's timeouts.
    """

    attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 10.0
    deadline: float = field(default_factory=default_deadline)

    def delays(self) -> Iterator[float]:
        for attempt in range(self.attempts - 1):
            yield random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


class WrappingStore(Store):
    """A store that adds behaviour around another and takes on its capabilities."""

    def __init__(self, inner: Store):
        self.inner = inner
        self.supports_get_range = inner.supports_get_range
        self.concurrency = inner.concurrency
        self.description = inner.description
        self.deadline = inner.deadline

    @property
    def supports_put_if_absent(self) -> bool:  # type: ignore[override]
        # Asked of the inner store when needed: a store may probe its server on first use.
        return self.inner.supports_put_if_absent

    def list_sizes(self, prefix: str = "") -> Iterator[tuple[str, int | None]]:
        return self.inner.list_sizes(prefix)

    def list_temporary(self) -> Iterator[tuple[str, int, float]]:
        return self.inner.list_temporary()

    def delete_temporary(self, name: str) -> None:
        self.inner.delete_temporary(name)

    def close(self) -> None:
        self.inner.close()


class RetryingStore(WrappingStore):
    """Retries transient failures of the wrapped store, then raises them.

    A persistent failure ends as a :class:`StoreError` naming the store and the operation.
    """

    def __init__(self, inner: Store, policy: RetryPolicy | None = None):
        super().__init__(inner)
        self.policy = policy or RetryPolicy()

    def retry(self, op: str, key: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` (a request to the wrapped store) under this retry policy."""
        return self._retry(op, key, fn)

    def _retry(self, op: str, key: str, fn: Callable[[], T]) -> T:
        delays = self.policy.delays()
        deadline = self.deadline or self.policy.deadline
        started = time.monotonic()
        attempts = 0
        while True:
            try:
                attempts += 1
                return fn()
            except TransientStoreError as exc:
                delay = next(delays, None)
                elapsed = time.monotonic() - started
                if delay is None or elapsed + delay >= deadline:
                    timing = "" if delay is None else f" in {elapsed:.0f}s (deadline {deadline:g}s)"
                    raise StoreError(
                        f"{self.description}: {op} {key} failed after {attempts} attempts"
                        f"{timing}: {exc}"
                    ) from exc
                time.sleep(delay)

    def get(self, key: str) -> bytes:
        return self._retry("get", key, lambda: self.inner.get(key))

    def get_range(self, key: str, start: int, length: int) -> bytes:
        return self._retry("get", key, lambda: self.inner.get_range(key, start, length))

    def put(self, key: str, value: bytes) -> None:
        self._retry("put", key, lambda: self.inner.put(key, value))

    def put_if_absent(self, key: str, value: bytes) -> bool:
        return self._retry("put", key, lambda: self.inner.put_if_absent(key, value))

    def delete(self, key: str) -> None:
        self._retry("delete", key, lambda: self.inner.delete(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        # Listings are materialised so that a retry restarts from the beginning.
        return iter(self._retry("list", prefix or "/", lambda: list(self.inner.list(prefix))))

    def exists(self, key: str) -> bool:
        return self._retry("exists", key, lambda: self.inner.exists(key))

    def list_sizes(self, prefix: str = "") -> Iterator[tuple[str, int | None]]:
        return iter(self._retry("list", prefix or "/", lambda: list(self.inner.list_sizes(prefix))))

    def list_temporary(self) -> Iterator[tuple[str, int, float]]:
        return iter(
            self._retry("list", "temporary objects", lambda: list(self.inner.list_temporary()))
        )

    def delete_temporary(self, name: str) -> None:
        self._retry("delete", name, lambda: self.inner.delete_temporary(name))


@dataclass
class RequestCounts:
    """Requests made to a store and bytes moved, by kind."""

    get: int = 0
    put: int = 0
    list: int = 0
    delete: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, kind: str, n_bytes_read: int = 0, n_bytes_written: int = 0) -> None:
        with self._lock:
            setattr(self, kind, getattr(self, kind) + 1)
            self.bytes_read += n_bytes_read
            self.bytes_written += n_bytes_written

    def as_dict(self) -> dict[str, int]:
        return {
            "get": self.get,
            "put": self.put,
            "list": self.list,
            "delete": self.delete,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
        }


class CountingStore(WrappingStore):
    """Counts the requests made through it (one per attempt) and the bytes moved."""

    def __init__(self, inner: Store, counts: RequestCounts | None = None):
        super().__init__(inner)
        self.counts = counts or RequestCounts()

    def get(self, key: str) -> bytes:
        try:
            data = self.inner.get(key)
        except Exception:
            self.counts.add("get")
            raise
        self.counts.add("get", n_bytes_read=len(data))
        return data

    def get_range(self, key: str, start: int, length: int) -> bytes:
        try:
            data = self.inner.get_range(key, start, length)
        except Exception:
            self.counts.add("get")
            raise
        self.counts.add("get", n_bytes_read=len(data))
        return data

    def put(self, key: str, value: bytes) -> None:
        self.counts.add("put", n_bytes_written=len(value))
        self.inner.put(key, value)

    def put_if_absent(self, key: str, value: bytes) -> bool:
        self.counts.add("put", n_bytes_written=len(value))
        return self.inner.put_if_absent(key, value)

    def delete(self, key: str) -> None:
        self.counts.add("delete")
        self.inner.delete(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        self.counts.add("list")
        return self.inner.list(prefix)

    def exists(self, key: str) -> bool:
        self.counts.add("get")
        return self.inner.exists(key)

    def list_sizes(self, prefix: str = "") -> Iterator[tuple[str, int | None]]:
        self.counts.add("list")
        return self.inner.list_sizes(prefix)

    def list_temporary(self) -> Iterator[tuple[str, int, float]]:
        self.counts.add("list")
        return self.inner.list_temporary()

    def delete_temporary(self, name: str) -> None:
        self.counts.add("delete")
        self.inner.delete_temporary(name)


def as_store(obj: Any) -> Store:
    """Return ``obj`` as a :class:`Store`: a store as it is, a mapping adapted."""
    if isinstance(obj, Store):
        return obj
    if isinstance(obj, MutableMapping):
        return MappingStore(obj)
    raise TypeError(f"not a store or a mutable mapping: {type(obj).__name__}")
