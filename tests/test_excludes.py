"""Exclude rules: gitignore semantics anchored at the source root, cache and tagged folders,
large files; the snapshot records the rules it used."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kvtools import kvb, kvb_json, open_repo, write_tree

from kvbackup import Repository
from kvbackup.errors import ExitCode
from kvbackup.excludes import CACHEDIR_SIGNATURE, ExcludeRules, parse_size

TREE = {
    "a.log": b"x",
    "keep.log": b"x",
    "notes.txt": b"x",
    "build/out.o": b"x",
    "src/build/gen.c": b"x",
    "src/main.c": b"x",
    "src/main.LOG": b"x",
    "docs/x/y/draft.tmp": b"x",
    "docs/draft.tmp": b"x",
    "docs/readme.md": b"x",
    "cache/data": b"x",
    "sub/cache/data": b"x",
    "sub/cache.txt": b"x",
}

#: (patterns, paths of TREE the backup keeps), checked against what git itself does.
GITIGNORE_TABLE = [
    (["*.log"], set(TREE) - {"a.log", "keep.log"}),
    (["*.log", "!keep.log"], set(TREE) - {"a.log"}),
    (["/build"], set(TREE) - {"build/out.o"}),
    (["build/"], set(TREE) - {"build/out.o", "src/build/gen.c"}),
    (["cache/"], set(TREE) - {"cache/data", "sub/cache/data"}),
    (["cache"], set(TREE) - {"cache/data", "sub/cache/data"}),
    (["docs/**/*.tmp"], set(TREE) - {"docs/x/y/draft.tmp", "docs/draft.tmp"}),
    (["src/*.c"], set(TREE) - {"src/main.c"}),
    (["docs/*", "!docs/readme.md"], set(TREE) - {"docs/x/y/draft.tmp", "docs/draft.tmp"}),
    (["sub", "!sub/cache.txt"], set(TREE) - {"sub/cache/data", "sub/cache.txt"}),
    (["#comment", "", "notes.txt"], set(TREE) - {"notes.txt"}),
]


def files_in(repo: Repository, snapshot: str = "latest") -> set[str]:
    snap = repo.resolve_snapshot(snapshot)
    return {os.fsdecode(e.path) for e in repo.entries(snap) if e.kind == "file"}


@pytest.mark.parametrize(("patterns", "kept"), GITIGNORE_TABLE)
def test_gitignore_semantics(tmp_path: Path, patterns: list[str], kept: set[str]) -> None:
    src = write_tree(tmp_path / "src", TREE)
    repo = Repository.init({})
    result = repo.backup(src, exclude=patterns)
    assert files_in(repo) == kept
    assert result.snapshot.excludes == {"patterns": patterns}
    assert result.stats.excluded > 0


def test_iexclude_ignores_case(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", TREE)
    repo = Repository.init({})
    repo.backup(src, excludes=ExcludeRules(ipatterns=["*.log"]))
    assert files_in(repo) == set(TREE) - {"a.log", "keep.log", "src/main.LOG"}


def test_patterns_are_anchored_at_each_given_folder(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", TREE)
    repo = Repository.init({})
    repo.backup([src / "src", src / "docs"], exclude=["/build", "/x"])
    prefix = os.fspath(src).lstrip("/")
    assert files_in(repo) == {
        f"{prefix}/src/main.c",
        f"{prefix}/src/main.LOG",
        f"{prefix}/docs/draft.tmp",
        f"{prefix}/docs/readme.md",
    }


def test_cli_exclude_options_together(tmp_path: Path) -> None:
    files = dict(TREE)
    files["cache/CACHEDIR.TAG"] = CACHEDIR_SIGNATURE + b"\n# a cache\n"
    files["fake-cache/CACHEDIR.TAG"] = b"Signature: not the right one"
    files["fake-cache/data"] = b"x"
    files["private/.nobackup"] = b""
    files["private/secret"] = b"x"
    files["huge.bin"] = b"x" * 3000
    files["medium.bin"] = b"x" * 2048
    src = write_tree(tmp_path / "src", files)
    (tmp_path / "ignore").write_text("# build outputs\nbuild/\n*.tmp\n!docs/draft.tmp\n")
    repo = tmp_path / "repo"
    cache = tmp_path / "cache"
    kvb("init", repo, cache=cache)
    out = kvb_json(
        "backup", src, "--repo", repo, "--exclude-file", tmp_path / "ignore",
        "--exclude", "*.log", "--iexclude", "MAIN.c", "--exclude-caches",
        "--exclude-if-present", ".nobackup", "--exclude-larger-than", "2K", cache=cache,
    )  # fmt: skip
    assert (
        out["stats"]["excluded"] == 9
    )  # 2 build folders, 2 logs, main.c, a draft, cache, private, huge.bin
    kept = files_in(open_repo(str(repo)))
    assert kept == {
        "notes.txt",
        "src/main.LOG",
        "docs/draft.tmp",
        "docs/readme.md",
        "sub/cache/data",
        "sub/cache.txt",
        "fake-cache/CACHEDIR.TAG",
        "fake-cache/data",
        "medium.bin",
    }
    snap = open_repo(str(repo)).resolve_snapshot("latest")
    assert snap.excludes == {
        "patterns": ["build/", "*.tmp", "!docs/draft.tmp", "*.log"],
        "ipatterns": ["MAIN.c"],
        "exclude_caches": True,
        "if_present": [".nobackup"],
        "larger_than": 2048,
    }


def test_a_bad_size_is_a_usage_error(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"a": b"x"})
    done = kvb(
        "backup", src, "--repo", tmp_path / "repo", "--exclude-larger-than", "lots",
        cache=tmp_path / "cache", expect=ExitCode.USAGE,
    )  # fmt: skip
    assert b"not a size" in done.stderr


@pytest.mark.parametrize(
    ("text", "size"),
    [("500", 500), ("10k", 10240), ("1.5M", 1572864), ("2GiB", 2 << 30), ("3 MB", 3 << 20)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_excluded_entries_are_not_restored_and_unchanged_reruns_stay_cheap(
    tmp_path: Path,
) -> None:
    src = write_tree(tmp_path / "src", TREE)
    repo = Repository.init({})
    repo.backup(src, exclude=["build/"])
    second = repo.backup(src, exclude=["build/"])
    assert second.stats.files_read == 0
    repo.restore("latest", tmp_path / "out")
    assert not (tmp_path / "out/build").exists() and (tmp_path / "out/src/main.c").exists()


def test_one_file_system_keeps_mount_points_empty(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"here.txt": b"x", "mnt/.keep": b""})
    os.unlink(src / "mnt/.keep")
    done = os.system(f"mount -t tmpfs kvbackup-test {src / 'mnt'} 2>/dev/null")
    if done != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        (src / "mnt/elsewhere.txt").write_bytes(b"on another file system")
        repo = Repository.init({})
        repo.backup(src, excludes=ExcludeRules(one_file_system=True))
        snap = repo.resolve_snapshot("latest")
        paths = {os.fsdecode(e.path) for e in repo.entries(snap)}
        assert paths == {"here.txt", "mnt"}
        assert snap.excludes == {"one_file_system": True}
        repo.backup(src, full=True)
        assert "mnt/elsewhere.txt" in files_in(repo)
    finally:
        os.system(f"umount {src / 'mnt'}")


def test_verify_full_does_not_count_what_the_rules_left_out(tmp_path: Path) -> None:
    files = dict(TREE)
    files["cache/CACHEDIR.TAG"] = CACHEDIR_SIGNATURE
    src = write_tree(tmp_path / "src", files)
    repo = Repository.init({})
    repo.backup(src, excludes=ExcludeRules(patterns=["*.log", "build/"], exclude_caches=True))
    assert repo.verify_full(src).ok
    (src / "new.txt").write_bytes(b"added since")
    (src / "new.log").write_bytes(b"excluded anyway")
    result = repo.verify_full(src)
    assert [(d.path, d.kind) for d in result.differences] == [("new.txt", "only-in-source")]
