"""Behaviour particular to the local directory and memory stores, and URL routing."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import kvbackup_fsspec
import kvbackup_localdir
import kvbackup_memory
import kvbackup_s3
import pytest
from kvbackup_localdir.store import LocalDirStore

from kvbackup.errors import KeyNotFoundError, OptionError, StoreError
from kvbackup.registry import PluginRegistry
from kvbackup.store import Store


def open_builtin(url: str, options: dict[str, str]) -> Store:
    """A built-in store as the engine opens it: options parsed by the plugin's schema."""
    return PluginRegistry(autoload=False).open_store(url, options)


def test_local_root_is_not_created_by_opening_or_reading(tmp_path: Path) -> None:
    store = open_builtin(str(tmp_path / "repo"), {})
    with pytest.raises(KeyNotFoundError):
        store.get("config")
    assert list(store.list("snapshots/")) == []
    assert not (tmp_path / "repo").exists()


def test_local_put_into_missing_root_fails_without_creating_it(tmp_path: Path) -> None:
    store = open_builtin(str(tmp_path / "repo"), {})
    with pytest.raises(StoreError, match="does not exist"):
        store.put("groups/g/packs/p", b"x")
    assert not (tmp_path / "repo").exists()


def test_local_create_option_and_ensure_root_make_the_root(tmp_path: Path) -> None:
    open_builtin(str(tmp_path / "a" / "repo"), {"create": "true"})
    assert (tmp_path / "a" / "repo").is_dir()
    store = open_builtin(f"file://{tmp_path}/b", {})
    store.ensure_root()
    store.put("config", b"c")
    assert (tmp_path / "b" / "config").read_bytes() == b"c"


def test_local_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(StoreError, match="not a directory"):
        open_builtin(str(tmp_path / "f"), {})


def test_local_bad_option_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        OptionError,
        match=r"^store 'local': unknown option 'crate' "
        r"\(valid options: concurrency, create, fsync\)$",
    ):
        open_builtin(str(tmp_path), {"crate": "true"})


def test_local_keys_map_to_files_and_temp_files_are_not_listed(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    store.put("groups/ab12/packs/p1", b"data")
    assert (tmp_path / "groups" / "ab12" / "packs" / "p1").read_bytes() == b"data"
    (tmp_path / "groups" / "ab12" / "packs" / ".tmp-1-abc").write_bytes(b"partial")
    assert list(store.list("groups/")) == ["groups/ab12/packs/p1"]
    assert sorted(p.name for p in (tmp_path / "groups/ab12/packs").iterdir()) == [
        ".tmp-1-abc",
        "p1",
    ]


def test_local_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path / "repo", create=True)
    for key in ("../x", "/etc/passwd", "a/../../x", ".hidden"):
        with pytest.raises(ValueError):
            store.put(key, b"x")
    assert list(store.list("../")) == []


def test_local_two_processes_racing_for_one_lock_have_one_winner(tmp_path: Path) -> None:
    code = (
        "import sys; from kvbackup_localdir.store import LocalDirStore as S\n"
        "s = S(sys.argv[1]); wins = 0\n"
        "for i in range(200):\n"
        "    wins += s.put_if_absent(f'locks/l{i}', sys.argv[2].encode())\n"
        "    s.put(f'shared/k{i % 5}', sys.argv[2].encode() * 1000)\n"
        "print(wins)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path), name], stdout=subprocess.PIPE, text=True
        )
        for name in ("a", "b")
    ]
    wins = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert sum(wins) == 200
    store = LocalDirStore(tmp_path)
    assert len(list(store.list("locks/"))) == 200
    for i in range(5):  # whole values only, never a mix or a partial write
        assert store.get(f"shared/k{i}") in (b"a" * 1000, b"b" * 1000)
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_local_get_range_of_directory_key_is_absent(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    store.put("a/b", b"x")
    with pytest.raises(KeyNotFoundError):
        store.get("a")
    assert store.exists("a") is False


def test_memory_url_opened_twice_shares_data() -> None:
    url = f"memory://{uuid.uuid4().hex}"
    one = open_builtin(url, {})
    two = open_builtin(url, {})
    one.put("k", b"v")
    assert two.get("k") == b"v"
    assert one.put_if_absent("lock", b"1") is True
    assert two.put_if_absent("lock", b"2") is False
    assert open_builtin("memory://other-" + url[9:], {}).exists("k") is False


@pytest.mark.parametrize(
    ("url", "store"),
    [
        ("/var/backups/repo", "local"),
        ("relative/repo", "local"),
        ("file:///var/backups/repo", "local"),
        ("memory://x", "memory"),
        ("s3://bucket/prefix", "s3"),
        ("gcs://bucket/prefix", "fsspec"),
        ("fsspec::s3://bucket/prefix", "fsspec"),
        ("fsspec::memory://x", "fsspec"),
        ("fsspec::file:///var/backups/repo", "fsspec"),
        ("fsspec::rare-protocol://x", "fsspec"),
    ],
)
def test_urls_route_to_the_right_store(url: str, store: str) -> None:
    plugins = [kvbackup_memory, kvbackup_localdir, kvbackup_s3, kvbackup_fsspec]
    registry = PluginRegistry(plugins=plugins, autoload=False)
    assert registry.store_for_url(url).name == store


def test_importing_store_plugins_does_not_import_their_backends() -> None:
    code = (
        "import sys, kvbackup_s3, kvbackup_fsspec, kvbackup_localdir, kvbackup_memory\n"
        "print(sorted(m for m in ('boto3', 'botocore', 'fsspec', 's3fs') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_boolean_option_that_is_not_one_is_an_error(tmp_path: Path) -> None:
    from kvbackup.core.repo import open_store

    with pytest.raises(OptionError, match="fsync: not a boolean"):
        open_store(str(tmp_path), {"fsync": "maybe"})
    assert open_store(str(tmp_path), {"fsync": "No"}) is not None
