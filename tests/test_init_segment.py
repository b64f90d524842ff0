"""``kvbackup init --segment-size``: the forced-cut size a repository records (issue 16),
set from the command line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import PASSWORD, assert_same_tree, kvbackup

from kvbackup import Repository
from kvbackup.errors import ExitCode
from kvbackup.format.chunker import DEFAULT_SEGMENT_SIZE


def init_json(repo: Path, *args: str) -> dict:
    return json.loads(kvbackup("init", repo, "--json", *args).stdout)


def recorded_segment_size(repo: Path) -> int | None:
    with Repository.open(repo, password=PASSWORD) as opened:
        return opened.config.chunker.segment_size


def test_the_default_segment_size_is_recorded(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    assert init_json(repo)["segment_size"] == DEFAULT_SEGMENT_SIZE
    assert recorded_segment_size(repo) == DEFAULT_SEGMENT_SIZE


@pytest.mark.parametrize(
    ("given", "recorded"), [("8M", 8 << 20), ("1GiB", 1 << 30), ("none", None)]
)
def test_a_given_segment_size_is_recorded(tmp_path: Path, given: str, recorded: int | None) -> None:
    repo = tmp_path / "repo"
    assert init_json(repo, "--segment-size", given)["segment_size"] == recorded
    assert recorded_segment_size(repo) == recorded


@pytest.mark.parametrize("given", ["1K", "lots", "-5M"])
def test_a_segment_size_a_config_cannot_hold_is_refused_before_anything_is_written(
    tmp_path: Path, given: str
) -> None:
    repo = tmp_path / "repo"
    done = kvbackup("init", repo, "--segment-size", given, check=False)
    assert done.returncode == ExitCode.USAGE
    assert "--segment-size" in done.stderr
    assert "Traceback" not in done.stderr
    assert not repo.exists()


def test_files_larger_than_a_small_segment_round_trip(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    kvbackup("init", repo, "--segment-size", "4M")
    src = tmp_path / "src"
    src.mkdir()
    (src / "large.bin").write_bytes(os.urandom(10 << 20))
    (src / "small.txt").write_text("small")
    kvbackup("backup", src, "--repo", repo)
    kvbackup("restore", "latest", tmp_path / "out", "--repo", repo)
    assert_same_tree(src, tmp_path / "out")
