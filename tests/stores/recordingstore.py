"""A store wrapper that records every read (key and byte range), to tell which objects,
and which parts of them, a command fetched."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from kvbackup.store import Store, WrappingStore


class RecordingStore(WrappingStore):
    """Passes every request through; records reads as ``(key, start, end)`` (a whole
    object: ``end`` is its length)."""

    def __init__(self, inner: Store):
        super().__init__(inner)
        self.reads: list[tuple[str, int, int]] = []
        self._lock = threading.Lock()

    def _record(self, key: str, start: int, end: int) -> None:
        with self._lock:
            self.reads.append((key, start, end))

    def get(self, key: str) -> bytes:
        data = self.inner.get(key)
        self._record(key, 0, len(data))
        return data

    def get_range(self, key: str, start: int, length: int) -> bytes:
        data = self.inner.get_range(key, start, length)
        self._record(key, start, start + len(data))
        return data

    def put(self, key: str, value: bytes) -> None:
        self.inner.put(key, value)

    def put_if_absent(self, key: str, value: bytes) -> bool:
        return self.inner.put_if_absent(key, value)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.inner.list(prefix)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def times_read(self, key: str, start: int, end: int) -> int:
        """How many reads covered the bytes ``[start, end)`` of ``key`` whole."""
        return sum(1 for k, s, e in self.reads if k == key and s <= start and end <= e)
