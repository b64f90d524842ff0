"""Backups on real S3 servers (moto_server and rclone serve s3), through the real command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import PASSWORD, assert_same_tree, cli_env, kvbackup, make_tree
from s3servers import S3Server
from stores.faultproxy import FaultProxy

from kvbackup import Repository


@pytest.fixture(params=["moto", "rclone"])
def server(request: pytest.FixtureRequest) -> S3Server:
    return request.getfixturevalue(f"{request.param}_s3")  # type: ignore[no-any-return]


def s3_env(server: S3Server) -> dict[str, str]:
    return cli_env(**server.env())


def test_full_incremental_and_restore_on_s3(tmp_path: Path, server: S3Server) -> None:
    env = s3_env(server)
    url = f"s3://{server.new_bucket()}/backups/home"
    src = make_tree(tmp_path / "src")
    kvbackup("init", url, env=env)
    first = json.loads(kvbackup("backup", src, "--repo", url, "--json", env=env).stdout)
    (src / "docs" / "readme.txt").write_text("edited on S3\n")
    (src / "added.txt").write_text("new file")
    second = json.loads(kvbackup("backup", src, "--repo", url, "--json", env=env).stdout)
    assert second["group"] == first["group"]
    assert second["stats"]["files_read"] == 2
    assert second["requests"]["put"] <= 6
    kvbackup("restore", "latest", tmp_path / "out", "--repo", url, env=env)
    assert_same_tree(src, tmp_path / "out")
    full = json.loads(kvbackup("backup", src, "--repo", url, "--json", "--full", env=env).stdout)
    assert full["group"] != first["group"]


def test_initial_backup_makes_few_puts(tmp_path: Path, moto_s3: S3Server) -> None:
    env = s3_env(moto_s3)
    url = f"s3://{moto_s3.new_bucket()}/r"
    src = tmp_path / "src"
    src.mkdir()
    for i in range(2000):  # many small files go into a few packs
        (src / f"f{i:04d}.txt").write_text(f"small file {i}\n" * 20)
    kvbackup("init", url, env=env)
    result = json.loads(kvbackup("backup", src, "--repo", url, "--json", env=env).stdout)
    # the .open record, the data pack, the metadata pack, an index fragment, the snapshot
    assert result["requests"]["put"] <= 6


def test_killed_backup_on_s3_is_resumed(tmp_path: Path, server: S3Server) -> None:
    env = s3_env(server)
    bucket = server.new_bucket()
    url = f"s3://{bucket}/repo"
    src = tmp_path / "src"
    src.mkdir()
    for i in range(10):
        (src / f"part{i}.bin").write_bytes(os.urandom(8 << 20))
    kvbackup("init", url, env=env)
    client = server.client()

    def keys() -> list[str]:
        listing = client.list_objects_v2(Bucket=bucket, Prefix="repo/")
        return [o["Key"] for o in listing.get("Contents", [])]

    # every request of the doomed backup is delayed, so it is surely killed half-way
    with FaultProxy(server.endpoint, slow=1.0, delay=0.15) as proxy:
        slow_env = env | {"AWS_ENDPOINT_URL": proxy.endpoint, "AWS_ENDPOINT_URL_S3": proxy.endpoint}
        proc = subprocess.Popen(
            [_exe(), "backup", str(src), "--repo", url],
            env=slow_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if len([k for k in keys() if "/packs/" in k]) >= 2:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not [k for k in keys() if k.startswith("repo/snapshots/") and not k.endswith(".open")]
    done = json.loads(kvbackup("backup", src, "--repo", url, "--json", env=env).stdout)
    assert any("resumed interrupted snapshot" in m for m in done["messages"]), done
    assert done["stats"]["chunks_deduplicated"] >= 2
    assert done["stats"]["bytes_new"] <= 80 << 20
    kvbackup("restore", "latest", tmp_path / "out", "--repo", url, env=env)
    assert_same_tree(src, tmp_path / "out")


def _exe() -> str:
    import shutil

    exe = shutil.which("kvbackup")
    assert exe
    return exe


def test_backup_through_503s_resets_and_slow_answers_completes(
    tmp_path: Path, moto_s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = moto_s3.new_bucket()
    src = make_tree(tmp_path / "src")
    for i in range(6):
        (src / f"extra{i}.bin").write_bytes(os.urandom(300_000))
    with FaultProxy(
        moto_s3.endpoint, slowdown=0.15, reset=0.1, slow=0.05, delay=0.2, seed=7
    ) as proxy:
        for key, value in {
            **moto_s3.env(),
            "AWS_ENDPOINT_URL": proxy.endpoint,
            "AWS_ENDPOINT_URL_S3": proxy.endpoint,
        }.items():
            monkeypatch.setenv(key, value)
        url = f"s3://{bucket}/flaky"
        repo = Repository.init(url, password=PASSWORD, store_options={"read_timeout": "1"})
        repo.backup(src)
        (src / "extra0.bin").write_bytes(os.urandom(300_000))
        repo.backup(src)
        Repository.open(url, password=PASSWORD).restore("latest", tmp_path / "out")
        assert sum(proxy.faults.values()) >= 5
    assert_same_tree(src, tmp_path / "out")


def test_wrong_credentials_are_a_one_line_error(tmp_path: Path, rclone_s3: S3Server) -> None:
    env = s3_env(rclone_s3) | {"AWS_SECRET_ACCESS_KEY": "wrong"}
    done = kvbackup("init", f"s3://{rclone_s3.new_bucket()}/r", env=env, check=False)
    assert done.returncode == 13
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_missing_bucket_is_a_one_line_error(moto_s3: S3Server) -> None:
    done = kvbackup(
        "snapshots", "--repo", "s3://no-such-bucket-here/r", env=s3_env(moto_s3), check=False
    )
    assert done.returncode == 13
    assert "does not exist" in done.stderr and done.stderr.count("\n") == 1


def test_store_options_are_passed_to_the_store(tmp_path: Path, moto_s3: S3Server) -> None:
    env = s3_env(moto_s3)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        del env[name]
    url = f"s3://{moto_s3.new_bucket()}/opt"
    endpoint = f"endpoint_url={moto_s3.endpoint}"
    src = make_tree(tmp_path / "src")
    kvbackup("init", url, "--store-option", endpoint, env=env)
    kvbackup("backup", src, "--repo", url, "-o", endpoint, env=env)
    kvbackup("restore", "latest", tmp_path / "out", "--repo", url, "-o", endpoint, env=env)
    assert_same_tree(src, tmp_path / "out")


def test_fsspec_store_backs_up_to_s3_through_s3fs(tmp_path: Path, moto_s3: S3Server) -> None:
    env = s3_env(moto_s3)
    url = f"fsspec::s3://{moto_s3.new_bucket()}/via-s3fs"
    src = make_tree(tmp_path / "src")
    kvbackup("init", url, env=env)
    kvbackup("backup", src, "--repo", url, env=env)
    (src / "docs" / "readme.txt").write_text("second\n")
    kvbackup("backup", src, "--repo", url, env=env)
    kvbackup("restore", "latest", tmp_path / "out", "--repo", url, env=env)
    assert_same_tree(src, tmp_path / "out")
    keys = [
        o["Key"]
        for o in moto_s3.client().list_objects_v2(Bucket=url.split("/")[2]).get("Contents", [])
    ]
    assert "via-s3fs/config" in keys


def test_fsspec_file_url_round_trips(tmp_path: Path) -> None:
    url = f"fsspec::file://{tmp_path / 'repo'}"
    src = make_tree(tmp_path / "src")
    kvbackup("init", url)
    kvbackup("backup", src, "--repo", url)
    kvbackup("restore", "latest", tmp_path / "out", "--repo", url)
    assert_same_tree(src, tmp_path / "out")
    assert (tmp_path / "repo" / "config").exists()
