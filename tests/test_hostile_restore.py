"""A crafted repository with hostile names cannot make restore write outside its target."""

from __future__ import annotations

import json
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path

import pytest
from helpers import PASSWORD, kvbackup

from kvbackup import Repository
from kvbackup.core.writer import ChunkWriter
from kvbackup.errors import ExitCode
from kvbackup.format.envelope import ObjectType
from kvbackup.format.filelist import FileListWriter
from kvbackup.format.index import GroupIndex
from kvbackup.format.layout import snapshot_key
from kvbackup.format.snapshots import COMPLETE, Snapshot
from kvbackup.sources import DIR, FILE, SYMLINK, Entry


def craft_snapshot(repo: Repository, entries: list[tuple[bytes, str, bytes]]) -> str:
    """Write a complete snapshot whose file list holds exactly ``entries`` (path, kind,
    content or link target), bypassing every check a real backup makes."""
    group = secrets.token_hex(8)
    writer = ChunkWriter(repo.core, group, GroupIndex(), repo.core.codec, repo.config.pack_size)
    made = []
    for path, kind, payload in entries:
        entry = Entry(path=path, kind=kind, mode=0o644 if kind != DIR else 0o755)
        if kind == FILE:
            made.append((entry, writer.add(ObjectType.DATA, payload)))
            entry.size = len(payload)
        else:
            made.append((entry, None))
            if kind == SYMLINK:
                entry.target = payload
    writer.drain()
    filelist = FileListWriter(lambda data: writer.add(ObjectType.METADATA, data))
    for entry, ref in made:
        if ref is not None:
            assert ref.id is not None
            entry.chunks = [ref.id]
        filelist.add(entry)
    refs = filelist.close()
    writer.finish()
    ids = [ref.id for ref in refs if ref.id is not None]
    snap = Snapshot(
        id="20300101T000000Z",
        time=datetime(2030, 1, 1, tzinfo=timezone.utc),
        host="evil",
        user="",
        source="/evil",
        source_kind="directory",
        group=group,
        state=COMPLETE,
        filelist=[c.hex() for c in ids],
    )
    key = snapshot_key(snap.id, final=True)
    repo.core.put_object(key, ObjectType.SNAPSHOT, json.dumps(snap.to_json()).encode())
    return snap.id


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A repository, a restore target, and a folder outside it that must stay empty."""
    repo = tmp_path / "repo"
    kvbackup("init", repo)
    outside = tmp_path / "outside"
    outside.mkdir()
    return repo, tmp_path / "target", outside


def restore(repo: Path, target: Path, entries: list[tuple[bytes, str, bytes]]) -> str:
    craft_snapshot(Repository.open(repo, password=PASSWORD), entries)
    done = kvbackup("restore", "latest", target, "--repo", repo, check=False)
    assert done.returncode == ExitCode.CORRUPT, done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr


def everything_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize(
    "name",
    [
        b"../escaped",
        b"a/../../escaped",
        b"/tmp/escaped-abs",
        b"./x/../../escaped",
        b"a//b",
        b"",
        b".",
    ],
)
def test_names_that_would_escape_are_refused(world: tuple[Path, Path, Path], name: bytes) -> None:
    repo, target, outside = world
    stderr = restore(repo, target, [(b"ok.txt", FILE, b"fine"), (name, FILE, b"evil")])
    assert "escape the restore target" in stderr
    assert (target / "ok.txt").read_bytes() == b"fine"
    assert everything_under(target) == ["ok.txt"]
    assert everything_under(outside) == []
    assert not (target.parent / "escaped").exists()


def test_a_symlink_in_the_snapshot_is_never_followed_by_later_entries(
    world: tuple[Path, Path, Path],
) -> None:
    repo, target, outside = world
    stderr = restore(
        repo,
        target,
        [
            (b"link", SYMLINK, os.fsencode(outside)),
            (b"link/planted.txt", FILE, b"evil"),
        ],
    )
    assert everything_under(outside) == []
    assert "link" in stderr


def test_a_symlink_already_in_the_target_is_not_followed(
    world: tuple[Path, Path, Path],
) -> None:
    repo, target, outside = world
    target.mkdir()
    os.symlink(outside, target / "pre")
    stderr = restore(repo, target, [(b"pre/planted.txt", FILE, b"evil")])
    assert everything_under(outside) == []
    assert "not a directory" in stderr


def test_a_file_name_that_is_a_symlink_in_the_target_is_not_written_through(
    world: tuple[Path, Path, Path],
) -> None:
    repo, target, outside = world
    target.mkdir()
    (outside / "victim").write_text("untouched")
    os.symlink(outside / "victim", target / "victim")
    restore(repo, target, [(b"victim", FILE, b"evil")])
    assert (outside / "victim").read_text() == "untouched"
