"""Progress: JSON lines with --json-progress (totals from a scan ahead, the snapshot or the
operation), a rich bar on a terminal, nothing when stderr is not a terminal."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from kvtools import PASSWORD, cli_env, init_repo, kvb, run_on_terminal, write_tree

FILES = {f"d{n % 3}/f{n}.bin": os.urandom(20_000 + n) for n in range(30)}
TOTAL_BYTES = sum(len(v) for v in FILES.values())


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "src", FILES)


def events(stderr: bytes) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    assert lines and lines[-1]["event"] == "done", stderr.decode()
    assert all(e["event"] == "progress" for e in lines[:-1])
    return lines[:-1]


def test_backup_json_progress_has_scanned_totals_rate_and_eta(
    tmp_path: Path, src: Path, cache: Path
) -> None:
    location = str(tmp_path / "repo")
    init_repo(location).close()
    done = kvb("backup", src, "--repo", location, "--json-progress", "--json", cache=cache)
    assert json.loads(done.stdout)["stats"]["files"] == len(FILES)  # stdout: the result only
    seen = events(done.stderr)
    assert {e["phase"] for e in seen} <= {"backup", "commit"}
    last = seen[-1]
    assert (last["total_files"], last["total_bytes"]) == (len(FILES), TOTAL_BYTES)
    assert (last["files"], last["bytes"]) == (len(FILES), TOTAL_BYTES)
    assert last["eta_seconds"] == 0 and last["bytes_per_second"] > 0
    assert any(e["path"].startswith("d") for e in seen)  # the current file or folder


def test_restore_verify_and_copy_json_progress_know_their_totals(
    tmp_path: Path, src: Path, cache: Path
) -> None:
    location = str(tmp_path / "repo")
    with init_repo(location) as repo:
        repo.backup(src)
    restored = events(
        kvb(
            "restore",
            "latest",
            tmp_path / "out",
            "--repo",
            location,
            "-q",
            "--json-progress",
            cache=cache,
        ).stderr
    )
    assert {e["phase"] for e in restored} == {"restore"}
    assert {(e["total_files"], e["total_bytes"]) for e in restored} == {(len(FILES), TOTAL_BYTES)}
    verified = events(
        kvb("verify", "--repo", location, "--no-cache", "-q", "--json-progress", cache=cache).stderr
    )
    assert verified and {e["phase"] for e in verified} == {"verify"}
    assert all(e["files"] <= e["total_files"] for e in verified)
    target = str(tmp_path / "copy")
    init_repo(target).close()
    (tmp_path / "pw").write_text(PASSWORD)
    copied = events(
        kvb("copy", "--from-repo", location, "--repo", target, "-q", "--json-progress",
            "--from-password-file", tmp_path / "pw", cache=cache).stderr
    )  # fmt: skip
    assert copied and {e["phase"] for e in copied} == {"copy"}
    assert {(e["total_files"], e["total_bytes"]) for e in copied} == {(len(FILES), TOTAL_BYTES)}


def test_no_progress_when_stderr_is_not_a_terminal(tmp_path: Path, src: Path, cache: Path) -> None:
    location = str(tmp_path / "repo")
    init_repo(location).close()
    done = kvb("backup", src, "--repo", location, cache=cache)
    assert done.stderr == b""
    assert b"snapshot " in done.stdout


def test_a_terminal_shows_a_bar_with_files_bytes_and_rate(
    tmp_path: Path, src: Path, cache: Path
) -> None:
    location = str(tmp_path / "repo")
    init_repo(location).close()
    env = cli_env(cache) | {"COLUMNS": "200", "TERM": "xterm"}
    code, text, _ = run_on_terminal(["backup", src, "--repo", location], env)
    assert code == 0
    assert f"/{len(FILES)} files" in text and "/s" in text, text[-2000:]
