"""An fsspec filesystem as a source: objects on the S3 test servers backed up through the real
command, incrementally (nothing unchanged is downloaded, counted at the HTTP level), and
restored to a folder or back to a URL."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import cli_env, kvbackup
from s3servers import S3Server
from stores.countingproxy import CountingProxy

from kvbackup.errors import ExitCode


@pytest.fixture(params=["moto", "rclone"])
def server(request: pytest.FixtureRequest) -> S3Server:
    return request.getfixturevalue(f"{request.param}_s3")  # type: ignore[no-any-return]


@pytest.fixture
def proxied(server: S3Server) -> Iterator[tuple[S3Server, CountingProxy, dict[str, str]]]:
    with CountingProxy(server.endpoint) as proxy:
        env = cli_env(**server.env())
        env.update(AWS_ENDPOINT_URL=proxy.endpoint, AWS_ENDPOINT_URL_S3=proxy.endpoint)
        yield server, proxy, env


def put(server: S3Server, bucket: str, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        server.client().put_object(Bucket=bucket, Key=key, Body=body)


def test_objects_are_backed_up_incrementally_and_restored(
    tmp_path: Path, proxied: tuple[S3Server, CountingProxy, dict[str, str]]
) -> None:
    server, proxy, env = proxied
    bucket = server.new_bucket()
    objects = {
        "data/a.txt": b"alpha",
        "data/sub/b.bin": os.urandom(50_000),
        "data/sub/deeper/c.txt": b"gamma",
        "other/x.txt": b"not in the prefix",
    }
    put(server, bucket, objects)
    repo = tmp_path / "repo"
    kvbackup("init", repo, env=env)
    url = f"s3://{bucket}/data"
    first = json.loads(kvbackup("backup", url, "--repo", repo, "--json", env=env).stdout)
    assert first["stats"]["files"] == 3 and first["stats"]["files_read"] == 3
    assert len(proxy.object_gets()) >= 3

    proxy.requests.clear()
    second = json.loads(kvbackup("backup", url, "--repo", repo, "--json", env=env).stdout)
    assert second["stats"]["files_read"] == 0 and second["stats"]["files_unchanged"] == 3
    assert proxy.object_gets() == [], "an unchanged object was downloaded"

    put(server, bucket, {"data/a.txt": b"ALPHA!"})
    proxy.requests.clear()
    third = json.loads(kvbackup("backup", url, "--repo", repo, "--json", env=env).stdout)
    assert third["stats"]["files_read"] == 1
    assert all(p.endswith("/data/a.txt") for p in proxy.object_gets())

    kvbackup("restore", "latest", tmp_path / "out", "--repo", repo, env=env)
    assert (tmp_path / "out/a.txt").read_bytes() == b"ALPHA!"
    assert (tmp_path / "out/sub/b.bin").read_bytes() == objects["data/sub/b.bin"]
    assert not (tmp_path / "out/x.txt").exists()

    back = server.new_bucket()
    kvbackup("restore", "latest", "--target-url", f"s3://{back}/copy", "--repo", repo, env=env)
    listed = server.client().list_objects_v2(Bucket=back)["Contents"]
    assert sorted(o["Key"] for o in listed) == [
        "copy/a.txt",
        "copy/sub/b.bin",
        "copy/sub/deeper/c.txt",
    ]
    body = server.client().get_object(Bucket=back, Key="copy/sub/b.bin")["Body"].read()
    assert body == objects["data/sub/b.bin"]


def test_fsspec_prefix_forces_any_fsspec_url(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d/f.txt").write_bytes(b"through fsspec")
    repo = tmp_path / "repo"
    kvbackup("init", repo)
    out = json.loads(kvbackup("backup", f"fsspec::file://{src}", "--repo", repo, "--json").stdout)
    assert out["stats"]["files"] == 1
    kvbackup("restore", "latest", tmp_path / "out", "--repo", repo)
    assert (tmp_path / "out/d/f.txt").read_bytes() == b"through fsspec"


def test_a_missing_protocol_package_is_named(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    kvbackup("init", repo)
    done = kvbackup("backup", "gcs://bucket/prefix", "--repo", repo, check=False)
    assert done.returncode == ExitCode.PLUGIN
    assert "gcsfs" in done.stderr and "Traceback" not in done.stderr
