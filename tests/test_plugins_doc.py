"""The plugin API: the example in docs/plugins.md works, and registration is checked."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import types
import typing
import zipfile
from pathlib import Path

import pytest

import kvbackup.hookspecs as hookspecs
from kvbackup import OptionError, Repository, hookimpl
from kvbackup.errors import PluginError
from kvbackup.hookspecs import RegisterSource, RegisterStore, RegisterTransform
from kvbackup.registry import PluginRegistry

DOC = Path(__file__).parent.parent / "docs" / "plugins.md"


def doc_block(marker: str) -> str:
    """The python block after ``<!-- example: MARKER`` in docs/plugins.md."""
    text = DOC.read_text()
    block = text[text.index(f"<!-- example: {marker}") :]
    start = block.index("```python\n") + len("```python\n")
    return block[start : block.index("```\n", start)]


def load_example() -> types.ModuleType:
    module = types.ModuleType("kvbackup_example")
    exec(compile(doc_block("plugin"), str(DOC), "exec", dont_inherit=True), module.__dict__)
    return module


@pytest.fixture
def example() -> types.ModuleType:
    return load_example()


def test_the_documented_example_plugin_backs_up_and_restores(
    example: types.ModuleType, tmp_path: Path
) -> None:
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("2024/beach.jpg", b"\xff\xd8 not really a jpeg")
        zf.writestr("notes.txt", b"hello from the archive")
    registry = PluginRegistry(plugins=[example])
    repo = Repository.init("logging://demo", password="pw", compression="reverse", plugins=registry)
    result = repo.backup(f"zip:{archive}")
    assert result.stats.files == 2
    store = example.STORES["logging://demo"]
    assert any(k.startswith("snapshots/") for k in store.written)
    assert repo.config.transforms[0]["name"] == "reverse"
    reopened = Repository.open("logging://demo", password="pw", plugins=registry)
    reopened.restore("latest", tmp_path / "out")
    assert (tmp_path / "out" / "notes.txt").read_bytes() == b"hello from the archive"
    assert (tmp_path / "out" / "2024" / "beach.jpg").read_bytes() == b"\xff\xd8 not really a jpeg"


def test_the_documented_plugin_tests_pass_all_three_suites(tmp_path: Path) -> None:
    (tmp_path / "kvbackup_example.py").write_text(doc_block("plugin"))
    (tmp_path / "test_kvbackup_example.py").write_text(doc_block("conformance"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path[1:]])}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
         f"--basetemp={tmp_path / 'pt'}", "test_kvbackup_example.py"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    lines = done.stdout.splitlines()
    for suite in ("TestLoggingStore", "TestZipSource", "TestReverse"):
        passed = [line for line in lines if f"::{suite}::" in line and " PASSED" in line]
        assert len(passed) >= 7, f"{suite}: too few tests passed"
    assert not [line for line in lines if " FAILED" in line or " ERROR" in line]


def test_the_engine_uses_the_plugins_source_for_the_specs_it_accepts(
    example: types.ModuleType,
) -> None:
    registry = PluginRegistry(plugins=[example])
    assert registry.source_for("zip:/x.zip").name == "zip"
    assert registry.store_for_url("logging://x").name == "logging"


def test_the_example_store_option_is_checked(example: types.ModuleType) -> None:
    registry = PluginRegistry(plugins=[example])
    with pytest.raises(OptionError, match=r"^store 'logging': unknown option 'kep' "
                       r"\(valid options: keep\)$"):  # fmt: skip
        registry.open_store("logging://y", {"kep": "3"})


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
    registry = PluginRegistry(autoload=False, defaults=False)
    with pytest.raises(PluginError, match="plugin may not be installed"):
        registry.get("transform", "zstd")
    with pytest.raises(PluginError, match="no store plugin serves s3://"):
        registry.store_for_url("s3://bucket/x")


def test_without_autoload_the_built_ins_are_still_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KVBACKUP_DISABLE_PLUGIN_AUTOLOAD", "1")
    registry = PluginRegistry()
    assert {r.name for r in registry.all("store")} == {"local", "s3", "memory", "fsspec"}
    assert {r.name for r in registry.all("source")} == {
        "directory", "paths", "iterable", "stdin", "command", "fsspec"
    }  # fmt: skip
    assert registry.default_transform("compression").name == "zstd"  # type: ignore[union-attr]
    assert registry.default_transform("encryption").name == "chacha20-poly1305"  # type: ignore[union-attr]
    assert PluginRegistry(defaults=False).all("store") == []


def test_every_hook_is_typed_and_documented() -> None:
    hooks = {n: f for n, f in vars(hookspecs).items() if n.startswith("kvbackup_")}
    protocols = {
        "kvbackup_register_stores": RegisterStore,
        "kvbackup_register_sources": RegisterSource,
        "kvbackup_register_transforms": RegisterTransform,
    }
    assert set(hooks) == set(protocols)
    doc = DOC.read_text()
    for name, hook in hooks.items():
        hints = typing.get_type_hints(hook)
        assert hints["register"] is protocols[name] and hints["return"] is type(None)
        text = hook.__doc__ or ""
        assert ":param register:" in text
        assert f"`{name}(register)`" in doc, f"{name} is not in docs/plugins.md"
        keywords = [
            p.name
            for p in inspect.signature(protocols[name].__call__).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        row = next(line for line in doc.splitlines() if f"`{name}(register)`" in line)
        for keyword in keywords:
            assert f"{keyword}=" in text, f"{name}: {keyword} is not in its docstring"
            assert f"{keyword}=" in row, f"{name}: {keyword} is not in docs/plugins.md"


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
