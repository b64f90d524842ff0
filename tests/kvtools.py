"""Helpers for the verify, browse and partial-restore tests: a small-chunk repository on a
local folder or an S3 server, the real ``kvbackup`` command, and ways to damage a
repository the way disks and people do."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers import cheap_kdf

from kvbackup.format.chunker import ChunkerParams
from kvbackup.format.index import BlobLocation
from kvbackup.format.layout import pack_key
from kvbackup.repository import Repository
from kvbackup.testkit.trees import write_tree

__all__ = [
    "PASSWORD",
    "SMALL_CHUNKS",
    "SMALL_PACKS",
    "chunks_of",
    "cli_env",
    "flip_byte",
    "init_repo",
    "kvb",
    "kvb_json",
    "open_repo",
    "repo_location",
    "run_on_terminal",
    "write_tree",
]

PASSWORD = "verify-tests password"
#: Small chunks and packs, so that a few hundred KiB make many of each.
SMALL_CHUNKS = ChunkerParams(min_size=2048, avg_size=8192, max_size=32768, small_file=8192)
SMALL_PACKS = 48 * 1024


def init_repo(url: str) -> Repository:
    return Repository.init(url, password=PASSWORD, chunker=SMALL_CHUNKS, pack_size=SMALL_PACKS)


def open_repo(url: str) -> Repository:
    return Repository.open(url, password=PASSWORD)


def cli_env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KVBACKUP_")}
    env.update(KVBACKUP_PASSWORD=PASSWORD, KVBACKUP_CACHE_DIR=str(cache))
    return env


def kvb(
    *args: str | os.PathLike[str], cache: Path, expect: int = 0, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run the real ``kvbackup`` command; fail unless it exits with ``expect``."""
    done = subprocess.run(
        [sys.executable, "-m", "kvbackup", *cheap_kdf(args)],
        env=cli_env(cache),
        capture_output=True,
        timeout=120,
        input=stdin,
    )
    assert done.returncode == expect, (
        f"kvbackup {' '.join(map(str, args))} exited {done.returncode}, expected {expect}:\n"
        f"{done.stdout.decode(errors='replace')[-3000:]}\n{done.stderr.decode(errors='replace')}"
    )
    return done


def run_on_terminal(
    args: list[str | os.PathLike[str]], env: dict[str, str]
) -> tuple[int, str, bytes]:
    """Run ``python -m kvbackup ARGS`` with its standard error on a pseudo-terminal (so it
    draws its progress bar); return its exit code, what the terminal was shown, and its
    standard output."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kvbackup", *args],
        env=env, stdout=subprocess.PIPE, stderr=terminal,
    )  # fmt: skip
    os.close(terminal)
    shown = b""
    while True:
        try:
            data = os.read(controller, 65536)
        except OSError:  # the other side closed
            break
        if not data:
            break
        shown += data
    out, _ = proc.communicate(timeout=120)
    os.close(controller)
    return proc.returncode, shown.decode(errors="replace"), out


def kvb_json(*args: str | os.PathLike[str], cache: Path, expect: int = 0) -> Any:
    return json.loads(kvb(*args, "--json", cache=cache, expect=expect).stdout)


def chunks_of(repo: Repository, snapshot: str, path: str) -> list[BlobLocation]:
    """Where the chunks of file ``path`` of ``snapshot`` are stored."""
    snap = repo.resolve_snapshot(snapshot)
    index, _ = repo.core.load_index(snap.group)
    for entry in repo.core.iter_entries(snap, index):
        if entry.path == os.fsencode(path):
            locations = [index.get(c) for c in entry.chunks]
            assert all(locations)
            return [loc for loc in locations if loc is not None]
    raise AssertionError(f"{path} is not in snapshot {snapshot}")


def flip_byte(repo: Repository, group: str, loc: BlobLocation) -> None:
    """Flip one bit in the middle of a stored chunk, in place in its pack."""
    key = pack_key(group, loc.pack_id)
    data = bytearray(repo.core.raw_store.get(key))
    data[loc.offset + loc.length // 2] ^= 0x01
    repo.core.raw_store.put(key, bytes(data))


def repo_location(kind: str, request: Any, tmp_path: Path, monkeypatch: Any) -> str:
    """A fresh repository location: a local folder, or a new bucket on the moto S3 server
    (its AWS_* settings put in the environment, for this process and the command)."""
    if kind == "local":
        return str(tmp_path / "repo")
    server = request.getfixturevalue("moto_s3")
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    return f"s3://{server.new_bucket()}/repo"
