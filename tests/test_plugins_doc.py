"""The plugin API: the example in docs/plugins.md works, and registration is checked."""

from __future__ import annotations

import inspect
import os
import re
import types
from pathlib import Path

import pytest

import kvbackup.hookspecs as hookspecs
from kvbackup import Repository, hookimpl
from kvbackup.errors import PluginError
from kvbackup.registry import PluginRegistry

DOC = Path(__file__).parent.parent / "docs" / "plugins.md"


def load_example() -> types.ModuleType:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    module = types.ModuleType("kvbackup_example")
    exec(compile(blocks[0], str(DOC), "exec"), module.__dict__)
    return module


@pytest.fixture
def example() -> types.ModuleType:
    return load_example()


def test_the_documented_example_plugin_backs_up_and_restores(
    example: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXAMPLE_GREETING", "hello from the environment")
    registry = PluginRegistry(plugins=[example])
    repo = Repository.init("logging://demo", password="pw", compression="reverse", plugins=registry)
    result = repo.backup("env:EXAMPLE_")
    assert result.stats.files == 1
    store = example.STORES["logging://demo"]
    assert any(k.startswith("snapshots/") for k in store.written)
    assert repo.config.transforms[0]["name"] == "reverse"
    reopened = Repository.open("logging://demo", password="pw", plugins=registry)
    reopened.restore("latest", tmp_path / "out")
    assert (tmp_path / "out" / "EXAMPLE_GREETING").read_text() == "hello from the environment"


def test_the_engine_uses_the_plugins_source_for_the_specs_it_accepts(
    example: types.ModuleType,
) -> None:
    registry = PluginRegistry(plugins=[example])
    assert registry.source_for("env:X").name == "environment"
    assert registry.store_for_url("logging://x").name == "logging"


def test_two_plugins_registering_one_name_is_an_error_naming_both() -> None:
    class One:
        @hookimpl
        def kvbackup_register_transforms(self, register):  # type: ignore[no-untyped-def]
            register("dup", lambda o, k: None)

    class Two(One):
        pass

    registry = PluginRegistry(plugins=[], autoload=False)
    registry.register(One(), name="one")
    registry.register(Two(), name="two")
    with pytest.raises(PluginError, match=r"'one'.*'two'|'two'.*'one'"):
        registry.all("transform")


def test_a_missing_plugin_is_a_clear_error() -> None:
    registry = PluginRegistry(autoload=False)
    with pytest.raises(PluginError, match="plugin may not be installed"):
        registry.get("transform", "zstd")
    with pytest.raises(PluginError, match="no store plugin serves s3://"):
        registry.store_for_url("s3://bucket/x")


def test_autoload_can_be_switched_off_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KVBACKUP_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert PluginRegistry().all("store") == []
    monkeypatch.delenv("KVBACKUP_DISABLE_PLUGIN_AUTOLOAD")
    assert {r.name for r in PluginRegistry().all("store")} >= {"local", "s3", "memory"}


def test_every_hook_is_typed_and_documented() -> None:
    hooks = [f for n, f in vars(hookspecs).items() if n.startswith("kvbackup_")]
    assert len(hooks) == 3
    for hook in hooks:
        assert ":param register:" in (hook.__doc__ or "")
        assert "register" in inspect.signature(hook).parameters


def test_importing_kvbackup_does_not_import_heavy_dependencies() -> None:
    import subprocess
    import sys

    code = (
        "import sys, kvbackup, kvbackup.registry; r = kvbackup.registry.PluginRegistry();"
        "r.all('store'); r.all('transform'); r.all('source');"
        "print(sorted(m for m in ('boto3', 's3fs', 'zstandard', 'cryptography', 'fsspec')"
        " if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ}
    )
    assert done.stdout.strip() == "[]"
