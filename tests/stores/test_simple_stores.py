"""The dict, memory:// and local directory stores pass the conformance suite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import kvbackup_memory
import pytest

from kvbackup.registry import PluginRegistry
from kvbackup.store import MappingStore, Store
from kvbackup.testing import StoreConformance


def open_builtin(url: str, options: dict[str, str]) -> Store:
    return PluginRegistry(autoload=False).open_store(url, options)


class TestDictStore(StoreConformance):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        yield MappingStore({})


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        name = uuid.uuid4().hex
        yield open_builtin(f"memory://{name}", {})
        kvbackup_memory.forget(name)


class TestLocalDirStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        yield open_builtin(str(tmp_path / "repo"), {"create": "true"})
