"""The ``memory`` store: ``memory://NAME``, a dict shared by every opening of NAME in this
process. For tests and experiments; nothing survives the process."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kvbackup import hookimpl
from kvbackup.errors import StoreError
from kvbackup.store import MappingStore, check_key

if TYPE_CHECKING:
    from kvbackup.hookspecs import RegisterStore

_DATA: dict[str, tuple[dict[str, bytes], threading.Lock]] = {}
_LOCK = threading.Lock()


@hookimpl
def kvbackup_register_stores(register: RegisterStore) -> None:
    register(
        "memory",
        _factory,
        schemes=("memory",),
        options=MemoryOptions,
        description="in-process memory, shared by name (memory://NAME)",
    )


@dataclass(frozen=True)
class MemoryOptions:
    """The memory store takes no options."""


class MemoryStore(MappingStore):
    """A :class:`MappingStore` over a process-global dict; conditional writes are atomic
    across every store opened on the same name."""

    def __init__(self, data: dict[str, bytes], lock: threading.Lock, description: str):
        super().__init__(data, description)
        self._shared_lock = lock

    def get(self, key: str) -> bytes:
        return super().get(check_key(key))

    def put(self, key: str, value: bytes) -> None:
        super().put(check_key(key), value)

    def put_if_absent(self, key: str, value: bytes) -> bool:
        check_key(key)
        with self._shared_lock:
            if key in self.mapping:
                return False
            self.mapping[key] = bytes(value)
            return True


def _factory(url: str, options: MemoryOptions) -> MemoryStore:
    if not url.startswith("memory://"):
        raise StoreError(f"{url}: not a memory:// URL")
    name = url[len("memory://") :]
    with _LOCK:
        data, lock = _DATA.setdefault(name, ({}, threading.Lock()))
    return MemoryStore(data, lock, description=url)


def forget(name: str) -> None:
    """Drop the data of ``memory://name`` (for tests)."""
    with _LOCK:
        _DATA.pop(name, None)
