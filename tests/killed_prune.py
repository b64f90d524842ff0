"""Run ``forget --keep-last 1 --prune`` on a repository (a local path or any store URL) and
SIGKILL this process just before its Nth write or delete (N < 0: never). Used by
``test_prune_crash.py`` and ``robustness/test_sigkill_prune.py``."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator

from kvbackup.core.repo import open_store
from kvbackup.ops.retention import RetentionPolicy
from kvbackup.repository import Repository
from kvbackup.store import Store, WrappingStore


class KillBeforeWrite(WrappingStore):
    """Passes everything through; dies (SIGKILL, no cleanup) before write number ``n``."""

    def __init__(self, inner: Store, n: int):
        super().__init__(inner)
        self.left = n

    def _tick(self) -> None:
        self.left -= 1
        if self.left == 0:
            os.kill(os.getpid(), signal.SIGKILL)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        return self.inner.get_range(key, start, length)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.inner.list(prefix)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def put(self, key: str, value: bytes) -> None:
        self._tick()
        self.inner.put(key, value)

    def put_if_absent(self, key: str, value: bytes) -> bool:
        self._tick()
        return self.inner.put_if_absent(key, value)

    def delete(self, key: str) -> None:
        self._tick()
        self.inner.delete(key)


def main(root: str, kill_at: int, password: str) -> None:
    store = KillBeforeWrite(open_store(root), kill_at)
    with Repository.open(store, password=password) as repo:
        result = repo.forget(RetentionPolicy(last=1), prune=True, max_unused=0.0)
    assert result.prune is not None
    print(json.dumps({"writes": result.requests["put"] + result.requests["delete"]}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
