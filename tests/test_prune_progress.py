"""Prune's progress: JSON lines with --json-progress (phases check, plan and prune, with
totals known once planned), and a rich bar on a terminal, as backup and restore have."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kvtools import cli_env, kvb, run_on_terminal
from lifecycle_tools import build_history


def events(stderr: bytes) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    assert lines and lines[-1]["event"] == "done", stderr.decode()
    return lines[:-1]


def test_prune_json_progress_goes_through_its_phases_to_its_totals(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    build_history(url, tmp_path)
    cache = tmp_path / "cache"
    kvb("forget", "-r", url, "--keep-last", "1", cache=cache)
    done = kvb("prune", "-r", url, "--max-unused", "0", "--json", "--json-progress", cache=cache)
    result = json.loads(done.stdout)  # stdout: the result only
    seen = events(done.stderr)
    phases = [e["phase"] for e in seen]
    assert phases[0] == "check" and "plan" in phases and phases[-1] == "prune"
    assert phases == sorted(phases, key=["check", "plan", "prune"].index)  # in order
    plan = [e for e in seen if e["phase"] == "plan"][-1]
    assert plan["files"] == plan["total_files"] == 2  # one group to delete, one to repack
    work = [e for e in seen if e["phase"] == "prune"]
    last = work[-1]
    assert result["packs_repacked"] > 0 and result["groups_deleted"]
    assert last["total_bytes"] > 0 and last["bytes"] == last["total_bytes"]  # repacked all
    objects = result["objects_deleted"] + result["packs_written"] + result["fragments_written"]
    assert last["files"] == objects and last["total_files"] >= objects - 1
    assert all(e["files"] <= e["total_files"] + 1 for e in work)
    assert last["eta_seconds"] is not None


def test_forget_prune_streams_the_prune_progress_too(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    build_history(url, tmp_path)
    done = kvb("forget", "-r", url, "--keep-last", "1", "--prune", "--json-progress",
               cache=tmp_path / "cache")  # fmt: skip
    assert {e["phase"] for e in events(done.stderr)} >= {"plan", "prune"}
    assert b"prune freed" in done.stdout


def test_prune_on_a_terminal_shows_a_bar(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    build_history(url, tmp_path)
    kvb("forget", "-r", url, "--keep-last", "1", cache=tmp_path / "cache")
    env = cli_env(tmp_path / "cache") | {"COLUMNS": "200", "TERM": "xterm"}
    code, text, out = run_on_terminal(["prune", "-r", url, "--max-unused", "0"], env)
    assert code == 0
    assert "prune" in text and " files" in text, text[-2000:]
    assert b"prune freed" in out
