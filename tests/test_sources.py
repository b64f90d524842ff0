"""Every way to name a source on the command line and in Python, end to end."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from kvtools import kvb, kvb_json, open_repo, write_tree

from kvbackup import Repository
from kvbackup.errors import ExitCode


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    location = tmp_path / "repo"
    kvb("init", location, cache=tmp_path / "cache")
    return location


def run(*args: object, tmp: Path, expect: int = 0, stdin: bytes | None = None) -> str:
    done = kvb(*map(str, args), cache=tmp / "cache", expect=expect, stdin=stdin)
    return done.stderr.decode()


def under(root: Path, path: Path) -> Path:
    """Where ``path`` (absolute) lands when restored under ``root``."""
    return root / os.fspath(path).lstrip("/")


def test_several_folders_and_files_are_each_restored_under_their_own_path(
    tmp_path: Path, repo: Path
) -> None:
    docs = write_tree(tmp_path / "home/docs", {"a.txt": b"a", "sub/b.txt": b"b"})
    music = write_tree(tmp_path / "music", {"song.ogg": b"la"})
    single = tmp_path / "home/notes.txt"
    single.write_bytes(b"notes")
    run("backup", docs, music, single, "--repo", repo, tmp=tmp_path)
    run("restore", "latest", tmp_path / "out", "--repo", repo, tmp=tmp_path)
    out = tmp_path / "out"
    assert under(out, docs / "sub/b.txt").read_bytes() == b"b"
    assert under(out, music / "song.ogg").read_bytes() == b"la"
    assert under(out, single).read_bytes() == b"notes"
    assert not under(out, tmp_path / "home/other").exists()
    again = kvb_json("backup", docs, music, single, "--repo", repo, cache=tmp_path / "cache")
    assert again["stats"]["files_read"] == 0 and again["parent"]


def test_a_single_file(tmp_path: Path, repo: Path) -> None:
    single = tmp_path / "data.tar"
    single.write_bytes(b"not really a tar")
    run("backup", single, "--repo", repo, tmp=tmp_path)
    run("restore", "latest", tmp_path / "out", "--repo", repo, tmp=tmp_path)
    assert under(tmp_path / "out", single).read_bytes() == b"not really a tar"


def test_files_from_and_files_from_verbatim(tmp_path: Path, repo: Path) -> None:
    src = write_tree(tmp_path / "src", {"a": b"a", "b": b"b", " c": b"c", "#d": b"d"})
    (tmp_path / "list").write_text(f"# my files\n{src / 'a'}\n\n  {src / 'b'}  \n")
    (tmp_path / "verbatim").write_text(f"{src / ' c'}\n{src / '#d'}\n")
    run("backup", "--files-from", tmp_path / "list", "--files-from-verbatim",
        tmp_path / "verbatim", "--repo", repo, tmp=tmp_path)  # fmt: skip
    names = {os.path.basename(os.fsdecode(e.path)) for e in entries(repo) if e.kind == "file"}
    assert names == {"a", "b", " c", "#d"}


def entries(repo: Path) -> list:  # type: ignore[type-arg]
    r = open_repo(str(repo))
    return list(r.entries("latest"))


def test_stdin_with_a_name(tmp_path: Path, repo: Path) -> None:
    payload = os.urandom(300_000)
    run("backup", "-", "--stdin-name", "dumps/db.sql", "--repo", repo, tmp=tmp_path,
        stdin=payload)  # fmt: skip
    run("restore", "latest", tmp_path / "out", "--repo", repo, tmp=tmp_path)
    assert (tmp_path / "out/dumps/db.sql").read_bytes() == payload


def test_stdin_from_command(tmp_path: Path, repo: Path) -> None:
    run("backup", "--repo", repo, "--stdin-from-command", "--stdin-name", "greeting.txt",
        "--", "printf", "hello %s", "world", tmp=tmp_path)  # fmt: skip
    run("restore", "latest", tmp_path / "out", "--repo", repo, tmp=tmp_path)
    assert (tmp_path / "out/greeting.txt").read_bytes() == b"hello world"


def test_a_command_that_fails_fails_the_backup(tmp_path: Path, repo: Path) -> None:
    err = run("backup", "--repo", repo, "--stdin-from-command", "--", "sh", "-c",
              "echo partial; exit 7", tmp=tmp_path, expect=ExitCode.ERROR)  # fmt: skip
    assert "exited with status 7" in err and "Traceback" not in err
    assert [s for s in open_repo(str(repo)).snapshots() if s.complete] == []


def test_a_missing_source_path_is_a_one_line_error(tmp_path: Path, repo: Path) -> None:
    err = run("backup", tmp_path / "nope", "--repo", repo, tmp=tmp_path,
              expect=ExitCode.NOT_FOUND)  # fmt: skip
    assert err.strip().endswith("nope: no such file or directory")
    assert len(err.strip().splitlines()) == 1


def test_an_unknown_source_option_names_the_valid_ones(tmp_path: Path, repo: Path) -> None:
    src = write_tree(tmp_path / "src", {"a": b"a"})
    err = run("backup", src, "--source-option", "colour=red", "--repo", repo, tmp=tmp_path,
              expect=ExitCode.USAGE)  # fmt: skip
    assert "unknown option 'colour'" in err and "one_file_system" in err


def test_source_type_and_options_reach_any_source_plugin(tmp_path: Path, repo: Path) -> None:
    run("backup", "-", "--source-type", "stdin", "--source-option", "name=x.bin",
        "--repo", repo, tmp=tmp_path, stdin=b"xyz")  # fmt: skip
    assert [e.path for e in entries(repo)] == [b"x.bin"]


def test_an_unknown_source_type_is_a_plugin_error(tmp_path: Path, repo: Path) -> None:
    single = tmp_path / "data.tar"
    single.write_bytes(b"x")
    err = run("backup", single, "--source-type", "tar", "--repo", repo, tmp=tmp_path,
              expect=ExitCode.PLUGIN)  # fmt: skip
    assert "tar" in err and "Traceback" not in err


def test_backup_dry_run_lists_what_it_would_read_and_stores_nothing(
    tmp_path: Path, repo: Path
) -> None:
    src = write_tree(tmp_path / "src", {"a": b"a", "b": b"b"})
    run("backup", src, "--repo", repo, tmp=tmp_path)
    (src / "b").write_bytes(b"changed")
    before = sorted(p.relative_to(repo) for p in repo.rglob("*"))
    out = kvb_json("backup", src, "--dry-run", "--repo", repo, cache=tmp_path / "cache")
    assert out["dry_run"] and out["would_read"] == ["b"]
    assert sorted(p.relative_to(repo) for p in repo.rglob("*")) == before


def test_python_api_several_sources_excludes_and_a_callable_stream(tmp_path: Path) -> None:
    a = write_tree(tmp_path / "a", {"x.txt": b"x", "x.log": b"log"})
    b = write_tree(tmp_path / "b", {"y.txt": b"y"})
    repo = Repository.init({})
    repo.backup([a, b], exclude=["*.log"])
    repo.backup([("made/later.bin", lambda: io.BytesIO(b"streamed")), ("now.txt", b"now")])
    repo.restore("latest", tmp_path / "out1")
    assert (tmp_path / "out1/made/later.bin").read_bytes() == b"streamed"
    first = repo.snapshots()[0]
    repo.restore(first, tmp_path / "out2", overwrite="never")
    assert under(tmp_path / "out2", a / "x.txt").read_bytes() == b"x"
    assert not under(tmp_path / "out2", a / "x.log").exists()
    assert under(tmp_path / "out2", b / "y.txt").read_bytes() == b"y"
