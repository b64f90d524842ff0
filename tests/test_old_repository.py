"""A repository written by a released version opens, lists, restores and verifies.

``tests/fixtures/repo-v0.1.0`` was written by kvbackup 0.1.0 (``make_repo_v0_1_0.py``) and is
never regenerated: the format is a contract (``docs/format.md``), and this test holds every
later version to it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import cli_env, kvbackup

from kvbackup import Repository
from kvbackup.errors import BadPasswordError
from kvbackup.format.chunker import Chunker
from kvbackup.format.envelope import ObjectType

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST = json.loads((FIXTURES / "repo-v0.1.0.manifest.json").read_text())


@pytest.fixture
def old_repo(tmp_path: Path) -> Path:
    """A copy of the fixture, so that nothing a test does can change the committed one."""
    copy = tmp_path / "repo-v0.1.0"
    shutil.copytree(FIXTURES / "repo-v0.1.0", copy)
    return copy


def tree_of(root: Path) -> dict[str, Any]:
    """The same description of a tree as the manifest's (see ``make_repo_v0_1_0.py``)."""
    out: dict[str, Any] = {}
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            entry: dict[str, Any] = {"mtime_ns": st.st_mtime_ns}
            if stat.S_ISLNK(st.st_mode):
                entry.update(kind="symlink", target=os.fsdecode(os.readlink(full)))
            elif stat.S_ISDIR(st.st_mode):
                entry.update(kind="dir", mode=stat.S_IMODE(st.st_mode))
            else:
                with open(full, "rb") as fh:
                    content = base64.b64encode(fh.read()).decode()
                entry.update(kind="file", mode=stat.S_IMODE(st.st_mode), content=content)
            out[os.path.relpath(full, base).hex()] = entry
    return dict(sorted(out.items()))


def test_the_fixture_holds_a_non_utf8_name_and_an_incremental_snapshot() -> None:
    names = {bytes.fromhex(p) for tree in MANIFEST["trees"].values() for p in tree}
    assert any(_not_utf8(n) for n in names)
    assert [s["full"] for s in MANIFEST["snapshots"]] == [True, False]


def _not_utf8(name: bytes) -> bool:
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def test_old_repository_opens_and_lists_its_snapshots(old_repo: Path) -> None:
    with Repository.open(str(old_repo), password=MANIFEST["password"]) as repo:
        snaps = repo.snapshots()
    assert [(s.id, s.parent, s.full, s.complete) for s in snaps] == [
        (s["id"], s["parent"], s["full"], True) for s in MANIFEST["snapshots"]
    ]
    assert snaps[0].group == snaps[1].group
    assert all(s.source == MANIFEST["source"] for s in snaps)


def test_snapshot_times_are_datetimes_written_back_exactly_as_stored(old_repo: Path) -> None:
    with Repository.open(str(old_repo), password=MANIFEST["password"]) as repo:
        for snap in repo.snapshots():
            stored = json.loads(repo.core.get_object(f"snapshots/{snap.id}", ObjectType.SNAPSHOT))
            assert isinstance(snap.time, datetime) and snap.time.utcoffset() == timedelta(0)
            assert isinstance(snap.end_time, datetime) and snap.end_time >= snap.time
            assert snap.to_json() == stored


def test_old_repository_is_refused_with_a_wrong_password(old_repo: Path) -> None:
    with pytest.raises(BadPasswordError):
        Repository.open(str(old_repo), password="not the password")


@pytest.mark.parametrize("which", [0, 1], ids=["full", "incremental"])
def test_old_repository_restores_bytes_and_metadata(
    old_repo: Path, tmp_path: Path, which: int
) -> None:
    snapshot_id = MANIFEST["snapshots"][which]["id"]
    target = tmp_path / "restored"
    with Repository.open(str(old_repo), password=MANIFEST["password"]) as repo:
        result = repo.restore(snapshot_id, target)
    assert result.errors == []
    assert tree_of(target) == MANIFEST["trees"][snapshot_id]


def test_old_repository_verifies_every_pack(old_repo: Path) -> None:
    with Repository.open(str(old_repo), password=MANIFEST["password"]) as repo:
        result = repo.verify(use_cache=False)
    assert result.ok, result.problems
    assert result.warnings == []
    assert result.snapshots == 2
    assert result.packs_read == result.packs > 0
    assert result.chunks_checked > 0


def test_old_repository_restores_and_verifies_through_the_command(
    old_repo: Path, tmp_path: Path
) -> None:
    env = cli_env(KVBACKUP_PASSWORD=MANIFEST["password"])
    latest = MANIFEST["snapshots"][-1]["id"]
    kvbackup("verify", "--repo", old_repo, "--no-cache", env=env)
    kvbackup("restore", "--repo", old_repo, "latest", tmp_path / "out", env=env)
    assert tree_of(tmp_path / "out") == MANIFEST["trees"][latest]


def test_old_repository_backs_up_with_its_old_cuts_and_keeps_its_config(
    old_repo: Path, tmp_path: Path
) -> None:
    """A config written before segments existed has no ``segment_size``: backups into it
    cut files as they always did (one content-defined pass, no forced cut), and the config
    is never rewritten."""
    config = (old_repo / "config").read_bytes()
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(5 << 20)
    (src / "large.bin").write_bytes(data)
    (src / "small.txt").write_text("small")
    with Repository.open(str(old_repo), password=MANIFEST["password"]) as repo:
        params = repo.core.config.chunker
        assert params.segment_size is None and "segment_size" not in params.as_dict()
        result = repo.backup(src)
        (entry,) = [e for e in repo.entries(result.snapshot.id) if e.path == b"large.bin"]
        cuts = Chunker(params).cut_points(data)
        assert entry.chunks == [
            repo.core.hasher(data[a:b]) for a, b in zip([0, *cuts], cuts, strict=False)
        ]
        repo.restore(result.snapshot.id, tmp_path / "out")
        assert repo.verify(use_cache=False).ok
    assert (tmp_path / "out" / "large.bin").read_bytes() == data
    assert (tmp_path / "out" / "small.txt").read_text() == "small"
    assert (old_repo / "config").read_bytes() == config


def test_a_config_written_now_parses_with_the_rules_of_kvbackup_0_1_0() -> None:
    """kvbackup 0.1.0 read the config as ``ChunkerParams(**data["chunker"])`` over exactly
    four fields and ignored unknown top-level keys: a config written now (with segments)
    must still parse that way, so an older kvbackup can open and restore a newer repository.
    """
    from dataclasses import dataclass

    from kvbackup.format.chunker import DATA_CHUNKS
    from kvbackup.format.config import RepoConfig

    @dataclass
    class ChunkerParamsOf010:  # kvbackup 0.1.0's, field for field
        min_size: int
        avg_size: int
        max_size: int
        small_file: int

    config = RepoConfig(
        id="0" * 32, created="2026-11-27T00:00:00Z", encryption=None, transforms=[],
        chunker=DATA_CHUNKS, master_key="0" * 64,
    )  # fmt: skip
    assert DATA_CHUNKS.segment_size is not None
    data = json.loads(config.to_json())
    ChunkerParamsOf010(**data["chunker"])  # a TypeError here is "config: malformed" in 0.1.0
    assert data["segment_size"] == DATA_CHUNKS.segment_size
    assert RepoConfig.from_json(config.to_json()).chunker == DATA_CHUNKS
