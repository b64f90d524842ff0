"""A crafted repository with hostile names cannot make restore write outside its target."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import zstandard
from helpers import PASSWORD, cli_env, kvbackup, remove_deep_tree

from kvbackup import Repository
from kvbackup.core.writer import ChunkWriter
from kvbackup.errors import ExitCode
from kvbackup.format.envelope import ObjectType
from kvbackup.format.envelope import _header as transforms_header
from kvbackup.format.filelist import FileListWriter
from kvbackup.format.index import GroupIndex
from kvbackup.format.layout import pack_key, snapshot_key
from kvbackup.format.packs import PackBuilder
from kvbackup.format.snapshots import COMPLETE, Snapshot
from kvbackup.sources import DIR, FILE, SYMLINK, Entry

#: An item of a crafted file list: ``(path, kind, content or link target)``, optionally with
#: a fourth element, how many times the content's chunk is repeated; or a raw line (bytes)
#: written into the file list as it is.
Item = tuple[bytes, str, bytes] | tuple[bytes, str, bytes, int] | bytes


def craft_snapshot(
    repo: Repository, entries: list[Item], snapshot_id: str = "20300101T000000Z"
) -> str:
    """Write a complete snapshot whose file list holds exactly ``entries``, bypassing every
    check a real backup makes."""
    group = secrets.token_hex(8)
    writer = ChunkWriter(repo.core, group, GroupIndex(), repo.core.codec, repo.config.pack_size)
    made: list[tuple[Entry | bytes, Any, int]] = []
    for item in entries:
        if isinstance(item, bytes):
            made.append((item, None, 0))
            continue
        path, kind, payload, *rest = item
        entry = Entry(path=path, kind=kind, mode=0o644 if kind != DIR else 0o755)
        if kind == FILE:
            repeat = rest[0] if rest else 1
            made.append((entry, writer.add(ObjectType.DATA, payload), repeat))
            entry.size = len(payload) * repeat
        else:
            made.append((entry, None, 0))
            if kind == SYMLINK:
                entry.target = payload
    writer.drain()
    filelist = FileListWriter(lambda data: writer.add(ObjectType.METADATA, data))
    for entry, ref, repeat in made:
        if isinstance(entry, bytes):
            filelist.add(Entry(path=b"-", kind=FILE), entry)
            continue
        if ref is not None:
            assert ref.id is not None
            entry.chunks = [ref.id] * repeat
        filelist.add(entry)
    refs = filelist.close()
    writer.finish()
    ids = [ref.id for ref in refs if ref.id is not None]
    return write_snapshot(repo, group, ids, snapshot_id)


def write_snapshot(repo: Repository, group: str, filelist: list[bytes], snapshot_id: str) -> str:
    """A complete snapshot record for ``group`` with the given file-list chunk ids."""
    snap = Snapshot(
        id=snapshot_id,
        time=datetime(2030, 1, 1, tzinfo=timezone.utc),
        host="evil",
        user="",
        source="/evil",
        source_kind="directory",
        group=group,
        state=COMPLETE,
        filelist=[c.hex() for c in filelist],
    )
    key = snapshot_key(snap.id, final=True)
    repo.core.put_object(key, ObjectType.SNAPSHOT, json.dumps(snap.to_json()).encode())
    return snap.id


def line(**fields: Any) -> bytes:
    """A file-list line: a regular entry's fields, changed or extended by ``fields``."""
    record: dict[str, Any] = {"p": "crafted", "t": "f", "m": 0o644, "mt": 0, "s": 0, "c": []}
    record.update(fields)
    return json.dumps(record).encode()


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A repository, a restore target, and a folder outside it that must stay empty."""
    repo = tmp_path / "repo"
    kvbackup("init", repo)
    outside = tmp_path / "outside"
    outside.mkdir()
    return repo, tmp_path / "target", outside


def restore(repo: Path, target: Path, entries: list[Item]) -> str:
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


@pytest.mark.parametrize("policy", ["always", "if-newer"])
def test_a_file_name_that_is_a_symlink_in_the_target_is_not_written_through(
    world: tuple[Path, Path, Path], policy: str
) -> None:
    """The symlink is replaced (``always``) or left (the default keeps the newer entry),
    never followed."""
    repo, target, outside = world
    target.mkdir()
    (outside / "victim").write_text("untouched")
    os.symlink(outside / "victim", target / "victim")
    craft_snapshot(Repository.open(repo, password=PASSWORD), [(b"victim", FILE, b"evil")])
    kvbackup("restore", "latest", target, "--overwrite", policy, "--repo", repo)
    assert (outside / "victim").read_text() == "untouched"
    assert (target / "victim").is_symlink() == (policy != "always")


# ------------------------------------------------------------------ crafted entries


def _tree_with(bad: bytes | tuple[bytes, str, bytes]) -> list[Item]:
    """A folder with a file before and after one crafted entry."""
    return [
        (b"dir", DIR, b""),
        (b"dir/before.txt", FILE, b"before"),
        bad,
        (b"dir/after.txt", FILE, b"after"),
    ]


CRAFTED = {
    "symlink target with NUL": (b"dir/link", SYMLINK, b"/etc/passwd\0ignored"),
    "overflowing mtime": line(p="dir/x", mt=10**30),
    "negative mtime beyond int64": line(p="dir/x", mt=-(10**30)),
    "overflowing mode": line(p="dir/x", m=1 << 70),
    "mode with type bits": line(p="dir/x", m=0o170777),
    "overflowing uid": line(p="dir/x", u=1 << 40, g=0),
    "uid as a string": line(p="dir/x", u="0", g=0),
    "size below zero": line(p="dir/x", s=-5),
    "mtime as a float": line(p="dir/x", mt=1.5),
    "path as a number": line(p=5),
    "path with a lone surrogate": b'{"p":"dir/\\udce9","t":"f","m":420,"mt":0}',
    "deeply nested JSON": b"[" * 100_000 + b"]" * 100_000,
    "deeply nested field": line(p="dir/x", c=[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]),
    "non-JSON record": b"\xff\xfe not json at all",
    "JSON that is not an object": b"[1, 2, 3]",
    "unknown kind": line(p="dir/x", t="socket"),
    "link target on a file": line(p="dir/x", l="/etc"),
    "chunk id of the wrong length": line(p="dir/x", c=["abcd"]),
    "hard link holding a NUL": line(p="dir/x", h="dir/before.txt\u0000x"),
    "hard link on a folder": line(p="dir/x", t="d", h="dir/before.txt"),
    "no links at all": line(p="dir/x", n=0),
    "device number beyond 64 bits": line(p="dir/x", t="c", rd=1 << 70),
    "owner name as a number": line(p="dir/x", un=5),
    "sparse as a string": line(p="dir/x", sp="yes"),
    "xattrs not in pairs": line(p="dir/x", x=[["dXNlci5h"]]),
    "xattr name not base64": line(p="dir/x", x=[["not base64!", "eA=="]]),
}


@pytest.mark.parametrize("bad", list(CRAFTED.values()), ids=list(CRAFTED))
def test_a_crafted_entry_is_a_corruption_report_and_the_rest_is_restored(
    world: tuple[Path, Path, Path], bad: bytes | tuple[bytes, str, bytes]
) -> None:
    repo, target, _ = world
    stderr = restore(repo, target, _tree_with(bad))
    assert "file list" in stderr and "malformed entry" in stderr, stderr
    assert "snapshot 20300101T000000Z" in stderr  # the report names the object
    assert "b'" not in stderr and 'b"' not in stderr
    assert (target / "dir" / "before.txt").read_bytes() == b"before"
    assert (target / "dir" / "after.txt").read_bytes() == b"after"
    assert not (target / "dir" / "x").exists() and not (target / "dir" / "link").exists()
    # the folder's own mode and mtime are still applied after the damage
    folder = (target / "dir").stat()
    assert oct(folder.st_mode & 0o777) == oct(0o755)
    assert folder.st_mtime_ns == 0


def test_a_deeply_nested_path_is_restored_without_recursion(
    world: tuple[Path, Path, Path],
) -> None:
    repo, target, _ = world
    deep = b"/".join([b"d"] * 1500) + b"/leaf"
    craft_snapshot(Repository.open(repo, password=PASSWORD), [(deep, FILE, b"deep")])
    try:
        done = kvbackup("restore", "latest", target, "--repo", repo, check=False)
        assert "Traceback" not in done.stderr and "RecursionError" not in done.stderr
        assert done.returncode == 0, done.stderr
        assert (target / os.fsdecode(deep)).read_bytes() == b"deep"
    finally:
        remove_deep_tree(target)


@pytest.mark.parametrize("command", ["ls", "diff", "cat", "stats"])
def test_other_commands_report_a_crafted_entry_as_corruption(
    world: tuple[Path, Path, Path], command: str
) -> None:
    repo, _, _ = world
    opened = Repository.open(repo, password=PASSWORD)
    craft_snapshot(opened, [(b"a", FILE, b"a")], snapshot_id="20290101T000000Z")
    craft_snapshot(opened, _tree_with(line(p="dir/x", mt=10**30)))
    args = {
        "ls": ["ls", "latest", "--long"],
        "diff": ["diff", "20290101T000000Z", "latest"],
        "cat": ["cat", "latest", "dir/after.txt"],
        "stats": ["stats", "latest"],
    }[command]
    done = kvbackup(*args, "--repo", repo, check=False)
    assert done.returncode == ExitCode.CORRUPT, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert "snapshot 20300101T000000Z: file list: line 3: malformed entry" in done.stderr


def test_a_non_json_snapshot_record_is_a_corruption_report(world: tuple[Path, Path, Path]) -> None:
    repo, _, _ = world
    opened = Repository.open(repo, password=PASSWORD)
    opened.core.put_object("snapshots/20300101T000000Z", ObjectType.SNAPSHOT, b"\x00 not json")
    opened.core.put_object("snapshots/20300102T000000Z", ObjectType.SNAPSHOT, b"[" * 50_000)
    done = kvbackup("snapshots", "--repo", repo, check=False)
    assert done.returncode == ExitCode.CORRUPT, done.stderr
    assert "snapshots/2030010" in done.stderr and "malformed snapshot record" in done.stderr
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------ memory bombs

RSS_WRAPPER = """
import resource, subprocess, sys
out = open(sys.argv[2], "wb") if sys.argv[2] != "-" else None
done = subprocess.run(sys.argv[3:], stdout=out or subprocess.DEVNULL, stderr=subprocess.PIPE)
sys.stderr.buffer.write(done.stderr)
with open(sys.argv[1], "w") as fh:
    fh.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(done.returncode)
"""


def run_measured(tmp_path: Path, *args: str | Path) -> tuple[int, str, float]:
    """Run ``kvbackup args`` (standard output discarded) in a fresh process whose only
    child it is; return its exit code, standard error and peak RSS in MiB."""
    exe = shutil.which("kvbackup")
    assert exe
    report = tmp_path / f"rss-{secrets.token_hex(4)}"
    done = subprocess.run(
        [sys.executable, "-c", RSS_WRAPPER, report, "-", exe, *map(str, args)],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stderr, int(report.read_text()) / 1024


def craft_bomb(repo: Repository, claimed: int) -> str:
    """A snapshot whose one file is one chunk: a zstd frame of a few KiB that decodes to
    ``claimed`` bytes of zeros, sealed and indexed as the real writer would."""
    compressor = zstandard.ZstdCompressor(level=1).compressobj(size=claimed)
    zeros = bytes(1 << 20)
    frame = b"".join([compressor.compress(zeros) for _ in range(claimed >> 20)])
    frame += compressor.flush()
    cid = secrets.token_bytes(32)
    core = repo.core
    cipher = core.config.encryption
    assert cipher
    auth = core.codec.chain[-1]
    header = transforms_header(ObjectType.DATA, ("zstd", cipher))
    blob = auth.encode(header + frame, transforms_header(ObjectType.DATA, (cipher,)) + cid)
    assert blob is not None and len(blob) < 64 * 1024
    group = secrets.token_hex(8)
    builder = PackBuilder()
    builder.add(cid, ObjectType.DATA, blob, claimed)
    key = pack_key(group, builder.pack_id)
    core.store.put(key, builder.seal(core.codec, key))
    core.write_index_fragment(group, [(builder.pack_id, builder.blobs)])
    writer = ChunkWriter(core, group, GroupIndex(), core.codec, core.config.pack_size)
    filelist = FileListWriter(lambda data: writer.add(ObjectType.METADATA, data))
    filelist.add(Entry(path=b"bomb", kind=FILE, size=claimed, chunks=[cid]))
    refs = filelist.close()
    writer.finish()
    return write_snapshot(repo, group, [r.id for r in refs if r.id is not None], "20300101T000000Z")


@pytest.fixture
def baseline_rss(world: tuple[Path, Path, Path], tmp_path: Path) -> float:
    """Peak RSS of a command that opens the repository and reads little (MiB)."""
    code, stderr, rss = run_measured(tmp_path, "snapshots", "--repo", world[0])
    assert code == 0, stderr
    return rss


def test_a_frame_claiming_more_than_a_chunk_is_refused_before_it_is_allocated(
    world: tuple[Path, Path, Path], tmp_path: Path, baseline_rss: float
) -> None:
    repo, target, _ = world
    craft_bomb(Repository.open(repo, password=PASSWORD), 1 << 30)
    code, stderr, rss = run_measured(tmp_path, "restore", "latest", target, "--repo", repo)
    assert code == ExitCode.CORRUPT, stderr
    assert "bomb" in stderr and "claims 1073741824 bytes" in stderr
    assert not (target / "bomb").exists()
    assert rss < baseline_rss + 64, (rss, baseline_rss)
    code, stderr, rss = run_measured(tmp_path, "cat", "latest", "bomb", "--repo", repo)
    assert code == ExitCode.CORRUPT and "claims 1073741824 bytes" in stderr, stderr
    assert rss < baseline_rss + 64, (rss, baseline_rss)
    verified = kvbackup("verify", "--repo", repo, check=False)
    assert verified.returncode == ExitCode.CORRUPT, verified.stdout + verified.stderr


@pytest.mark.parametrize("command", ["restore", "cat"])
def test_restore_and_cat_memory_is_bounded_in_decoded_bytes_whatever_the_repetition(
    world: tuple[Path, Path, Path], tmp_path: Path, baseline_rss: float, command: str
) -> None:
    """384 MiB of zeros: one 4 MiB chunk, stored in ~200 bytes, repeated 96 times. The
    fetch window once counted stored bytes and decoded all 96 at once."""
    repo, target, _ = world
    chunk = bytes(4 << 20)
    craft_snapshot(Repository.open(repo, password=PASSWORD), [(b"zeros", FILE, chunk, 96)])
    args = {
        "restore": ("restore", "latest", target),
        "cat": ("cat", "latest", "zeros"),
    }[command]
    code, stderr, rss = run_measured(tmp_path, *args, "--repo", repo)
    assert code == 0, stderr
    if command == "restore":
        assert (target / "zeros").stat().st_size == 96 * len(chunk)
    assert rss < baseline_rss + 128, (rss, baseline_rss)  # measured: +70 MiB; before: +390
