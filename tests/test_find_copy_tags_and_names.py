"""``find`` and ``copy`` take the snapshot filters (``--tag`` too), and what ``find`` and
``mount`` show of hostile names (newlines, escape sequences, bytes that are not UTF-8) is
escaped as ``ls`` escapes it: one line per entry, nothing that drives the terminal."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kvtools import PASSWORD, cli_env, init_repo, kvb, kvb_json, open_repo, write_tree

from kvbackup.errors import ExitCode

HOSTILE = {
    b"line\nbreak.txt": "line\\nbreak.txt",
    b"esc\x1b[31mred.txt": "esc\\x1b[31mred.txt",
    b"bad\xff.txt": "bad\\xff.txt",
    b"tab\tname.txt": "tab\\tname.txt",
}


@pytest.fixture
def tagged(tmp_path: Path) -> tuple[str, dict[str, list[str]]]:
    """Snapshots of three sources: tagged ``daily``, ``daily,offsite``, and untagged."""
    url = str(tmp_path / "repo")
    ids: dict[str, list[str]] = {}
    with init_repo(url) as repo:
        for name, tags in (("a", ["daily"]), ("b", ["daily", "offsite"]), ("c", [])):
            src = write_tree(tmp_path / name, {f"{name}.txt": name.encode()})
            ids[name] = [repo.backup(src, tags=tags).snapshot.id]
    return url, ids


def test_find_tag_searches_only_snapshots_carrying_the_tags(
    tagged: tuple[str, dict[str, list[str]]], tmp_path: Path
) -> None:
    url, _ids = tagged
    cache = tmp_path / "cache"

    def found(*args: str) -> list[str]:
        return sorted(r["path"] for r in kvb_json("find", "*.txt", "-r", url, *args, cache=cache))

    assert found() == ["a.txt", "b.txt", "c.txt"]
    assert found("--tag", "daily") == ["a.txt", "b.txt"]
    assert found("--tag", "daily,offsite") == ["b.txt"]  # all of a set
    assert found("--tag", "offsite", "--tag", "nothing") == ["b.txt"]  # any of the sets
    assert found("--tag", "nothing") == []


def test_copy_tag_copies_only_snapshots_carrying_the_tags(
    tagged: tuple[str, dict[str, list[str]]], tmp_path: Path
) -> None:
    url, ids = tagged
    target = str(tmp_path / "target")
    init_repo(target).close()
    (tmp_path / "pw").write_text(PASSWORD)
    out = kvb_json("copy", "--from-repo", url, "--from-password-file", tmp_path / "pw",
                   "--repo", target, "--tag", "daily", cache=tmp_path / "c")  # fmt: skip
    assert sorted(row["from"] for row in out["copied"]) == sorted(ids["a"] + ids["b"])
    with open_repo(target) as repo:
        assert sorted(s.tags for s in repo.snapshots()) == [["daily"], ["daily", "offsite"]]


def test_find_prints_hostile_names_escaped_one_line_each_and_json_gives_exact_bytes(
    tmp_path: Path,
) -> None:
    url = str(tmp_path / "repo")
    src = tmp_path / "src"
    src.mkdir()
    for name in HOSTILE:
        Path(os.fsdecode(os.fsencode(src) + b"/" + name)).write_bytes(b"x")
    with init_repo(url) as repo:
        repo.backup(src)
    done = kvb("find", "*.txt", "-r", url, cache=tmp_path / "c")
    lines = done.stdout.decode("utf-8").splitlines()  # valid UTF-8, too
    assert len(lines) == len(HOSTILE)
    assert sorted(line.split("  ")[1] for line in lines) == sorted(HOSTILE.values())
    assert b"\x1b" not in done.stdout and b"\t" not in done.stdout.replace(b"  ", b"")
    rows = kvb_json("find", "*.txt", "-r", url, cache=tmp_path / "c")
    exact = {
        base64.b64decode(r["path_base64"]) if "path_base64" in r else r["path"].encode()
        for r in rows
    }
    assert exact == set(HOSTILE)
    bad = next(r for r in rows if "path_base64" in r)
    assert bad["path"] == "bad\\xff.txt"


def test_mount_tree_makes_hostile_hosts_one_safe_folder_name_each(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    src = write_tree(tmp_path / "src", {"f": b"x"})
    hosts = {
        "..": b"%2E%2E",
        ".": b"%2E",
        "x/../y": b"x%2F..%2Fy",
        "nul\0host": b"nul%00host",
        "evil\x1b[2J\n": b"evil\x1b[2J\n",  # a legal file name: shown as stored
        "\udcff": b"\\udcff",  # a lone surrogate (JSON allows one): its escape
    }
    with init_repo(url) as repo:
        for host in hosts:
            repo.backup(src, host=host)
    with open_repo(url) as repo:
        tree = repo.browse()
        assert sorted(tree.listdir(b"/hosts")) == sorted(hosts.values())
        for folder in hosts.values():
            (source,) = tree.listdir(b"/hosts/" + folder)
            assert b"/" not in source
            assert tree.lookup(b"/hosts/" + folder + b"/" + source + b"/latest").kind == "symlink"


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="/dev/fuse is absent")
def test_mount_messages_escape_a_hostile_mount_point(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    init_repo(url).close()
    mountpoint = tmp_path / "mnt\x1b[31m\nkvbackup: forged"
    mountpoint.mkdir()
    (mountpoint / "occupied").write_bytes(b"")
    done = subprocess.run(
        [sys.executable, "-m", "kvbackup", "mount", mountpoint, "-r", url],
        env=cli_env(tmp_path / "c"), capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == ExitCode.USAGE
    (line,) = done.stderr.decode().splitlines()
    assert "mnt\\x1b[31m\\nkvbackup: forged: the mount point must be an empty folder" in line
