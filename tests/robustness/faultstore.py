"""A store that injects a seeded schedule of faults into a real store: transient errors,
throttling, timeouts, and truncated or zero-length objects (on reads: damaged in
transit; on writes: damaged at rest, unknown to the writer)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from kvbackup.errors import TransientStoreError
from kvbackup.store import Store

TRANSIENT = ("error", "throttle", "timeout")
DAMAGE = ("truncated", "zero-length")


@dataclass
class Fault:
    """Fault ``kind`` on the ``nth`` matching request (``op``: get or put) whose key
    contains ``where``."""

    kind: str
    op: str
    nth: int
    where: str = ""
    hit_key: str | None = None


class FaultStore(Store):
    def __init__(self, inner: Store, schedule: list[Fault]):
        self.inner = inner
        self.schedule = schedule
        self.supports_get_range = inner.supports_get_range
        self.concurrency = inner.concurrency
        self.description = f"faulty {inner.description}"
        self._seen: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    @property
    def pending(self) -> list[Fault]:
        return [f for f in self.schedule if f.hit_key is None]

    def _fault(self, op: str, key: str) -> Fault | None:
        """Count this request against every place it matches; the fault due now, if any."""
        with self._lock:
            places = {f.where for f in self.schedule if f.op == op and f.where in key}
            for where in places:
                self._seen[(op, where)] = self._seen.get((op, where), 0) + 1
            due = [
                fault
                for fault in self.schedule
                if fault.hit_key is None
                and fault.op == op
                and fault.where in places
                and self._seen[(op, fault.where)] == fault.nth
            ]
            due.sort(key=lambda f: not f.where)  # a fault placed precisely goes first
            for later in due[1:]:
                later.nth += 1  # one fault per request: the others wait for the next one
            if due:
                due[0].hit_key = key
                return due[0]
        return None

    @staticmethod
    def _raise_transient(fault: Fault) -> None:
        if fault.kind == "throttle":
            raise TransientStoreError("injected: 503 SlowDown, reduce your request rate")
        if fault.kind == "timeout":
            time.sleep(0.2)
            raise TransientStoreError("injected: read timed out")
        raise TransientStoreError("injected: connection reset")

    def _damage(self, fault: Fault, data: bytes) -> bytes:
        return b"" if fault.kind == "zero-length" else data[: len(data) // 2]

    def get(self, key: str) -> bytes:
        fault = self._fault("get", key)
        if fault and fault.kind in TRANSIENT:
            self._raise_transient(fault)
        data = self.inner.get(key)
        return self._damage(fault, data) if fault else data

    def get_range(self, key: str, start: int, length: int) -> bytes:
        fault = self._fault("get", key)
        if fault and fault.kind in TRANSIENT:
            self._raise_transient(fault)
        data = self.inner.get_range(key, start, length)
        return self._damage(fault, data) if fault else data

    def put(self, key: str, value: bytes) -> None:
        fault = self._fault("put", key)
        if fault and fault.kind in TRANSIENT:
            self._raise_transient(fault)
        self.inner.put(key, self._damage(fault, value) if fault else value)

    def put_if_absent(self, key: str, value: bytes) -> bool:
        return self.inner.put_if_absent(key, value)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.inner.list(prefix)

    def list_sizes(self, prefix: str = "") -> Iterator[tuple[str, int | None]]:
        return self.inner.list_sizes(prefix)


def transient_schedule(
    rng: random.Random, op: str, where: str = "", within: int = 4
) -> list[Fault]:
    """Each transient fault once, on ``op`` requests whose key contains ``where``, at
    distinct seeded positions among the first ``within`` (a restore reads at least the
    config, a key slot, a snapshot record and an index fragment; a backup writes at least
    two snapshot records, a pack and an index fragment)."""
    positions = rng.sample(range(1, within + 1), len(TRANSIENT))
    return [Fault(kind, op, n, where) for kind, n in zip(TRANSIENT, positions, strict=True)]


def damage_schedule(
    rng: random.Random, op: str, where: str, after: int = 0, within: int = 2
) -> list[Fault]:
    """Each damaging fault once, on requests whose key contains ``where``: two distinct
    seeded positions among the ``within`` requests after the first ``after``."""
    first, second = sorted(rng.sample(range(after + 1, after + max(2, within) + 1), 2))
    return [Fault("truncated", op, first, where), Fault("zero-length", op, second, where)]


def count_requests(store: FaultStore) -> int:
    """How many requests a store with the single counting fault below has seen."""
    return store._seen.get((store.schedule[0].op, store.schedule[0].where), 0)


def counting(op: str, where: str) -> list[Fault]:
    """A schedule that never fires, to count the ``op`` requests on keys with ``where``."""
    return [Fault("error", op, 10**9, where)]
