"""A store wrapper that injects faults on a schedule a test sets, and records what fired.

    store = FaultyStore({})                       # any Store or MutableMapping
    store.fail("put", "groups/*/packs/*", after=2, error="permanent")
    store.throttle("get", times=3)                # S3-style SlowDown, retried by kvbackup
    store.delay(0.05, "list")                     # latency
    store.truncate("get", "snapshots/*")          # a read that returns half the value
    ...
    assert store.counts["permanent"] == 1

A rule matches a request by operation and key (an ``fnmatch`` pattern; for ``list`` the
prefix); it lets its first ``after`` matching requests through, then fires on the next
``times`` of them (every one if ``times`` is ``None``). Rules are checked in the order they
were added.
"""

from __future__ import annotations

import fnmatch
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import TypeVar

from ..errors import KeyNotFoundError, StoreError, TransientStoreError
from ..store import Store, WrappingStore, as_store

__all__ = ["FaultRule", "FaultyStore", "FiredFault"]

T = TypeVar("T")

#: Operations a rule can name, and the groups that stand for several of them.
OPERATIONS = ("get", "get_range", "exists", "put", "put_if_absent", "delete", "list")
OPERATION_GROUPS = {
    "*": OPERATIONS,
    "read": ("get", "get_range", "exists"),
    "write": ("put", "put_if_absent"),
}
#: What ``error=`` may name: the exception an injected failure raises.
ERRORS: dict[str, Callable[[str], Exception]] = {
    "transient": lambda what: TransientStoreError(f"injected transient error: {what}"),
    "permanent": lambda what: StoreError(f"injected permanent error: {what}"),
    "missing": lambda what: KeyNotFoundError(f"injected: {what}: not found"),
}


@dataclass(frozen=True)
class FiredFault:
    """One fault that fired: its kind, the operation and the key (or listed prefix)."""

    kind: str
    op: str
    key: str


@dataclass
class FaultRule:
    """When a fault fires (see the module docstring) and what it does."""

    kind: str  # "transient", "permanent", "missing", "error", "throttle", "delay", "truncate"
    ops: tuple[str, ...]
    key: str = "*"
    after: int = 0
    times: int | None = None
    seconds: float = 0.0
    keep: float = 0.5
    exception: Exception | None = None
    seen: int = 0
    fired: int = 0

    def due(self, op: str, key: str) -> bool:
        """Count a matching request; return whether the fault fires on it."""
        if op not in self.ops or not fnmatch.fnmatchcase(key, self.key):
            return False
        self.seen += 1
        if self.seen <= self.after or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True

    def error(self, op: str, key: str) -> Exception:
        if self.exception is not None:
            return self.exception
        if self.kind == "throttle":
            return TransientStoreError(f"SlowDown (injected throttling): {op} {key}")
        return ERRORS[self.kind](f"{op} {key}")


class FaultyStore(WrappingStore):
    """Wraps a store (or a mapping); injects errors, throttling, latency and truncated reads.

    ``fired`` lists every fault that fired, in order; ``counts`` counts them by kind.
    """

    def __init__(self, inner: Store | MutableMapping[str, bytes]):
        super().__init__(as_store(inner))
        self.rules: list[FaultRule] = []
        self.fired: list[FiredFault] = []
        self._lock = threading.Lock()

    # -- the schedule ------------------------------------------------------------------------

    def fail(
        self,
        op: str = "*",
        key: str = "*",
        *,
        error: str | Exception = "transient",
        after: int = 0,
        times: int | None = None,
    ) -> FaultRule:
        """Make matching requests raise: ``error`` is ``"transient"``
        (:class:`~kvbackup.errors.TransientStoreError`, which kvbackup retries),
        ``"permanent"`` (:class:`~kvbackup.errors.StoreError`, not retried), ``"missing"``
        (:class:`~kvbackup.errors.KeyNotFoundError`) or an exception instance to raise."""
        if isinstance(error, Exception):
            return self._add(FaultRule("error", _ops(op), key, after, times, exception=error))
        if error not in ERRORS:
            raise ValueError(f"unknown error {error!r}: one of {', '.join(ERRORS)}")
        return self._add(FaultRule(error, _ops(op), key, after, times))

    def throttle(
        self, op: str = "*", key: str = "*", *, after: int = 0, times: int | None = None
    ) -> FaultRule:
        """Answer matching requests with S3-style throttling (a transient ``SlowDown``)."""
        return self._add(FaultRule("throttle", _ops(op), key, after, times))

    def delay(
        self,
        seconds: float,
        op: str = "*",
        key: str = "*",
        *,
        after: int = 0,
        times: int | None = None,
    ) -> FaultRule:
        """Hold matching requests for ``seconds`` before serving them."""
        return self._add(FaultRule("delay", _ops(op), key, after, times, seconds=seconds))

    def truncate(
        self,
        op: str = "read",
        key: str = "*",
        *,
        keep: float = 0.5,
        after: int = 0,
        times: int | None = None,
    ) -> FaultRule:
        """Cut the bytes matching reads return to the fraction ``keep`` of their length."""
        ops = tuple(o for o in _ops(op) if o in ("get", "get_range"))
        if not ops:
            raise ValueError(f"truncate applies to reads (get, get_range), not {op!r}")
        if not 0 <= keep < 1:
            raise ValueError(f"keep must be in [0, 1), not {keep}")
        return self._add(FaultRule("truncate", ops, key, after, times, keep=keep))

    def clear(self) -> None:
        """Remove every rule (what fired stays recorded)."""
        with self._lock:
            self.rules.clear()

    @property
    def counts(self) -> Counter[str]:
        """How many faults of each kind fired."""
        with self._lock:
            return Counter(f.kind for f in self.fired)

    def _add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self.rules.append(rule)
        return rule

    # -- the store ---------------------------------------------------------------------------

    def _serve(self, op: str, key: str, fn: Callable[[], T]) -> T:
        with self._lock:
            due = [rule for rule in self.rules if rule.due(op, key)]
            self.fired.extend(FiredFault(rule.kind, op, key) for rule in due)
        for rule in due:
            if rule.kind == "delay":
                time.sleep(rule.seconds)
            elif rule.kind != "truncate":
                raise rule.error(op, key)
        result = fn()
        for rule in due:
            if rule.kind == "truncate" and isinstance(result, bytes):
                result = result[: int(len(result) * rule.keep)]  # type: ignore[assignment]
        return result

    def get(self, key: str) -> bytes:
        return self._serve("get", key, lambda: self.inner.get(key))

    def get_range(self, key: str, start: int, length: int) -> bytes:
        return self._serve("get_range", key, lambda: self.inner.get_range(key, start, length))

    def exists(self, key: str) -> bool:
        try:
            return self._serve("exists", key, lambda: self.inner.exists(key))
        except KeyNotFoundError:  # an injected "missing": the answer is no
            return False

    def put(self, key: str, value: bytes) -> None:
        self._serve("put", key, lambda: self.inner.put(key, value))

    def put_if_absent(self, key: str, value: bytes) -> bool:
        return self._serve("put_if_absent", key, lambda: self.inner.put_if_absent(key, value))

    def delete(self, key: str) -> None:
        self._serve("delete", key, lambda: self.inner.delete(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        return iter(self._serve("list", prefix, lambda: list(self.inner.list(prefix))))


def _ops(op: str) -> tuple[str, ...]:
    if op in OPERATION_GROUPS:
        return OPERATION_GROUPS[op]
    if op not in OPERATIONS:
        names = ", ".join((*OPERATIONS, *OPERATION_GROUPS))
        raise ValueError(f"unknown store operation {op!r}: one of {names}")
    return (op,)
