"""Where the robustness suite keeps repositories: every built-in store kind."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from kvtools import SMALL_CHUNKS, SMALL_PACKS
from oracle import Manifest, differences

from kvbackup import Repository

PASSWORD = "robustness password"

#: Store kinds reachable from several processes, and (memory) from several threads.
PROCESS_KINDS = ["local", "moto", "rclone", "fsspec-file"]
ALL_KINDS = [*PROCESS_KINDS, "memory"]


def repository_url(kind: str, request: Any, workdir: Path, monkeypatch: Any) -> str:
    """A fresh, empty location of ``kind`` (S3 settings put in the environment)."""
    if kind == "local":
        return str(workdir / "repo")
    if kind == "fsspec-file":
        return f"fsspec::file://{workdir / 'repo'}"
    if kind == "memory":
        return f"memory://robustness-{uuid.uuid4().hex}"
    server = request.getfixturevalue(f"{kind}_s3")
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    return f"s3://{server.new_bucket()}/repo"


def init(url: str) -> None:
    Repository.init(url, password=PASSWORD, chunker=SMALL_CHUNKS, pack_size=SMALL_PACKS).close()


def open_repo(url: str) -> Repository:
    return Repository.open(url, password=PASSWORD)


def restore_differences(url: str, snapshot: str, expected: Manifest, target: Path) -> list[str]:
    """Restore ``snapshot`` to ``target`` (no file may fail) and say how it differs from
    ``expected``."""
    with open_repo(url) as repo:
        result = repo.restore(snapshot, target)
    assert not result.errors, result.errors
    return differences(expected, target)
