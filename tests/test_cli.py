"""End to end: the real ``kvbackup`` command on real temporary trees."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import PASSWORD, assert_same_tree, cli_env, kvbackup, make_tree

from kvbackup.errors import ExitCode


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    kvbackup("init", path)
    return path


def backup_json(src: Path, repo: Path, *args: str) -> dict:
    done = kvbackup("backup", src, "--repo", repo, "--json", *args)
    return json.loads(done.stdout)


def test_backup_and_restore_reproduce_bytes_modes_mtimes_and_symlinks(
    tmp_path: Path, repo: Path
) -> None:
    src = make_tree(tmp_path / "src")
    kvbackup("backup", src, "--repo", repo)
    kvbackup("restore", "latest", tmp_path / "out", "--repo", repo)
    assert_same_tree(src, tmp_path / "out")


def test_a_deep_tree_round_trips(tmp_path: Path, repo: Path) -> None:
    src = tmp_path / "src"
    deep = src.joinpath(*[f"level{i:02d}" for i in range(60)])
    deep.mkdir(parents=True)
    (deep / "bottom.txt").write_text("down here")
    kvbackup("backup", src, "--repo", repo)
    kvbackup("restore", "latest", tmp_path / "out", "--repo", repo)
    assert_same_tree(src, tmp_path / "out")


def test_100_bytes_inserted_in_a_large_file_upload_only_a_few_chunks(
    tmp_path: Path, repo: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(24 << 20)
    (src / "large.bin").write_bytes(data)
    first = backup_json(src, repo)
    assert first["stats"]["chunks_new"] >= 10
    (src / "large.bin").write_bytes(data[: 12 << 20] + os.urandom(100) + data[12 << 20 :])
    second = backup_json(src, repo)
    assert second["stats"]["files_read"] == 1
    # the chunk around the insertion, maybe its neighbour, and the file list
    assert second["stats"]["chunks_new"] <= 4
    assert second["stats"]["bytes_new"] < 10 << 20
    kvbackup("restore", "latest", tmp_path / "out", "--repo", repo)
    assert_same_tree(src, tmp_path / "out")


def test_unchanged_rerun_reads_no_file(tmp_path: Path, repo: Path) -> None:
    src = make_tree(tmp_path / "src")
    backup_json(src, repo)
    again = backup_json(src, repo)
    assert again["stats"]["files_read"] == 0
    assert again["stats"]["bytes_new"] == 0


def test_full_flag_starts_a_new_group(tmp_path: Path, repo: Path) -> None:
    src = make_tree(tmp_path / "src")
    first = backup_json(src, repo)
    full = backup_json(src, repo, "--full")
    assert full["group"] != first["group"]
    assert full["stats"]["files_read"] == full["stats"]["files"]


def test_backup_killed_with_sigkill_is_resumed_and_reuses_its_chunks(
    tmp_path: Path, repo: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    block = os.urandom(8 << 20)
    for i in range(24):  # 192 MiB of incompressible data
        (src / f"part{i:02d}.bin").write_bytes(block[i:] + block[:i])
    packs = repo / "groups"
    proc = subprocess.Popen(
        [*_kvbackup_cmd(), "backup", str(src), "--repo", str(repo)],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(packs.glob("*/packs/*"))) >= 3:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the backup finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = len(list(packs.glob("*/packs/*")))
    snaps = json.loads(kvbackup("snapshots", "--repo", repo, "--json").stdout)
    assert [s["state"] for s in snaps] == ["incomplete"]
    done = kvbackup("backup", src, "--repo", repo)
    assert "resumed interrupted snapshot" in done.stdout
    assert "reused" in done.stdout
    resumed = backup_json(src, repo, "--rehash")  # a third run: everything is there already
    assert resumed["stats"]["bytes_new"] == 0
    snaps = json.loads(kvbackup("snapshots", "--repo", repo, "--json").stdout)
    assert snaps[1]["resumes"] == snaps[0]["id"]
    assert snaps[1]["stats"]["chunks_deduplicated"] >= stored
    kvbackup("restore", "latest", tmp_path / "out", "--repo", repo)
    assert_same_tree(src, tmp_path / "out")


def _kvbackup_cmd() -> list[str]:
    import shutil

    exe = shutil.which("kvbackup")
    return [exe] if exe else [sys.executable, "-m", "kvbackup"]


def test_unreadable_file_is_skipped_with_partial_exit_code(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    (src / "private").chmod(0)
    repo = tmp_path / "repo"
    # root reads anything; in a user namespace of its own it keeps only owner permissions
    prefix = ["unshare", "--user"] if os.geteuid() == 0 else []
    kvbackup("init", repo)
    done = subprocess.run(
        [*prefix, *_kvbackup_cmd(), "backup", str(src), "--repo", str(repo)],
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == ExitCode.PARTIAL, done.stderr
    assert "private: skipped: Permission denied" in done.stderr
    assert "Traceback" not in done.stderr
    (snap,) = json.loads(kvbackup("snapshots", "--repo", repo, "--json").stdout)
    assert snap["state"] == "complete"
    assert snap["skipped"] == [{"path": "private", "error": "Permission denied"}]
    kvbackup("restore", "latest", tmp_path / "out", "--repo", repo)
    assert not (tmp_path / "out" / "private").exists()
    assert (tmp_path / "out" / "docs" / "readme.txt").read_text() == "hello world\n" * 100


def test_missing_repository_is_a_one_line_error(tmp_path: Path) -> None:
    done = kvbackup("snapshots", "--repo", tmp_path / "nope", check=False)
    assert done.returncode == ExitCode.NO_REPOSITORY
    assert done.stderr.count("\n") == 1
    assert "no kvbackup repository" in done.stderr


def test_a_folder_that_is_not_a_repository_is_refused(tmp_path: Path) -> None:
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "file.txt").write_text("not a repository")
    done = kvbackup("snapshots", "--repo", tmp_path / "stuff", check=False)
    assert done.returncode == ExitCode.NO_REPOSITORY
    assert (tmp_path / "stuff" / "file.txt").read_text() == "not a repository"


def test_wrong_password_is_a_one_line_error(tmp_path: Path, repo: Path) -> None:
    done = kvbackup("snapshots", "--repo", repo, env=cli_env(KVBACKUP_PASSWORD="nope"), check=False)
    assert done.returncode == ExitCode.BAD_PASSWORD
    assert (
        done.stderr.strip() == "kvbackup: error: wrong password: no key slot of this "
        "repository opens with it"
    )


def test_a_corrupt_snapshot_record_is_a_one_line_error(tmp_path: Path, repo: Path) -> None:
    src = make_tree(tmp_path / "src")
    kvbackup("backup", src, "--repo", repo)
    (record,) = [p for p in (repo / "snapshots").iterdir() if not p.name.endswith(".open")]
    data = bytearray(record.read_bytes())
    data[len(data) // 2] ^= 0x40
    record.write_bytes(bytes(data))
    done = kvbackup("restore", "latest", tmp_path / "out", "--repo", repo, check=False)
    assert done.returncode == ExitCode.CORRUPT
    # one warning naming the unreadable record, then the one-line error
    assert done.stderr.count("\n") == 2 and "Traceback" not in done.stderr
    assert all(line.startswith("kvbackup: ") for line in done.stderr.splitlines())
    assert record.name in done.stderr


def test_repository_comes_from_the_environment(tmp_path: Path, repo: Path) -> None:
    src = make_tree(tmp_path / "src")
    kvbackup("backup", src, env=cli_env(KVBACKUP_REPO=str(repo)))
    listing = kvbackup("snapshots", "--json", env=cli_env(KVBACKUP_REPO=str(repo)))
    assert len(json.loads(listing.stdout)) == 1


def test_backup_with_nothing_configured_uses_the_default_repository(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    env = cli_env(XDG_DATA_HOME=str(tmp_path / "data"), HOME=str(tmp_path))
    done = kvbackup("backup", src, env=env)
    assert "created the default repository" in done.stderr
    assert (tmp_path / "data" / "kvbackup" / "repository" / "config").exists()
    kvbackup("restore", "latest", tmp_path / "out", env=env)
    assert_same_tree(src, tmp_path / "out")


def test_ls_lists_the_snapshot_with_names_byte_for_byte(tmp_path: Path, repo: Path) -> None:
    src = make_tree(tmp_path / "src")
    kvbackup("backup", src, "--repo", repo)
    exe = _kvbackup_cmd()
    done = subprocess.run(
        [*exe, "ls", "latest", "--repo", str(repo)], env=cli_env(), capture_output=True, check=True
    )
    names = done.stdout.splitlines()
    assert b"docs/deep/er/still/leaf.txt" in names
    assert b"latin1-\\xe9t\\xe9.bin" in names  # bytes that are not UTF-8 are escaped
    assert "ünïcødé 文件.txt".encode() in names
    rows = json.loads(kvbackup("ls", "latest", "--json", "--repo", repo).stdout)
    exact = {base64.b64decode(r["path_base64"]) for r in rows if "path_base64" in r}
    assert exact == {b"latin1-\xe9t\xe9.bin"}


def test_plugins_lists_every_kind_with_its_distribution() -> None:
    rows = json.loads(kvbackup("plugins", "--json").stdout)
    kinds = {(r["kind"], r["name"]): r for r in rows}
    for key in [
        ("source", "directory"),
        ("source", "iterable"),
        ("store", "local"),
        ("store", "memory"),
        ("store", "s3"),
        ("store", "fsspec"),
        ("transform", "zstd"),
        ("transform", "chacha20-poly1305"),
    ]:
        assert key in kinds
        assert kinds[key]["distribution"].startswith("kvbackup ")


def test_snapshot_records_show_no_source_path_in_store_keys(tmp_path: Path, repo: Path) -> None:
    src = make_tree(tmp_path / "src-with-a-telling-name")
    kvbackup("backup", src, "--repo", repo)
    keys = [str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file()]
    assert not [k for k in keys if "telling" in k or "docs" in k]
    assert all(len(k) < 200 for k in keys)


def test_memory_stays_bounded_far_below_the_file_size(tmp_path: Path) -> None:
    def peak_rss_kib(size_mib: int) -> int:
        src = tmp_path / f"src{size_mib}"
        src.mkdir()
        with open(src / "big.bin", "wb") as fh:
            for _ in range(size_mib // 4):
                fh.write(os.urandom(4 << 20))  # unique data: the whole pipeline is busy
        repo = tmp_path / f"repo{size_mib}"
        kvbackup("init", repo)
        probe = (
            "import resource, subprocess, sys;"
            "subprocess.run(sys.argv[1:], check=True, capture_output=True);"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                probe,
                *_kvbackup_cmd(),
                "backup",
                str(src),
                "--repo",
                str(repo),
            ],
            env=cli_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        return int(done.stdout)

    # The pipeline holds at most a few packs and chunks: its ceiling is far below the file.
    assert peak_rss_kib(768) < 256 * 1024


def test_restore_password_from_file(tmp_path: Path, repo: Path) -> None:
    src = make_tree(tmp_path / "src")
    kvbackup("backup", src, "--repo", repo)
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    env = cli_env()
    del env["KVBACKUP_PASSWORD"]
    kvbackup(
        "restore",
        "latest",
        tmp_path / "out",
        "--repo",
        repo,
        "--password-file",
        tmp_path / "pw",
        env=env,
    )
    assert_same_tree(src, tmp_path / "out")


def test_a_target_that_cannot_be_written_is_a_one_line_error(tmp_path: Path, repo: Path) -> None:
    src = make_tree(tmp_path / "src")
    kvbackup("backup", src, "--repo", repo)
    (tmp_path / "a-file").write_text("not a folder")
    done = kvbackup("restore", "latest", tmp_path / "a-file" / "out", "--repo", repo, check=False)
    assert done.returncode == ExitCode.TARGET
    assert done.stderr.startswith("kvbackup: error: ")
    assert done.stderr.count("\n") == 1 and "internal error" not in done.stderr
