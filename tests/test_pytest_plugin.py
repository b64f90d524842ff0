"""kvbackup's pytest plugin, run the way a user runs it: example test modules through pytest
(``pytester``), with the outcomes they must have."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from kvbackup.testkit.pytest_plugin import ENDPOINT_ENV
from kvbackup.testkit.s3server import S3Server

pytest_plugins = ["pytester"]

PLUGIN = "kvbackup.testkit.pytest_plugin"
ROOT = Path(__file__).parent.parent


def plugin_args() -> list[str]:
    """Arguments for the example sessions. They rely on the plugin's entry point, and load
    the plugin by name only where the environment was installed before it had one. The
    hypothesis plugin is left out: each in-process session would import hypothesis anew."""
    installed = any(ep.value == PLUGIN for ep in entry_points(group="pytest11"))
    load = [] if installed else ["-p", PLUGIN]
    return [*load, "-p", "no:cacheprovider", "-p", "no:hypothesispytest"]


@pytest.fixture(autouse=True)
def share_the_s3_server(moto_s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example sessions use this session's moto server rather than each starting one."""
    monkeypatch.setenv(ENDPOINT_ENV, moto_s3.endpoint)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*plugin_args(), *args)


def test_the_plugin_is_declared_as_a_pytest11_entry_point() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pytest11"] == {"kvbackup": PLUGIN}


def test_a_backup_that_a_fault_breaks_fails_with_store_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_app="""
        from kvbackup import Repository
        from kvbackup.testkit import PASSWORD

        def test_backup_survives_throttling(kvbackup_repo, kvbackup_repo_url,
                                            kvbackup_faulty_store, kvbackup_tree, tmp_path):
            store = kvbackup_faulty_store(kvbackup_repo_url)
            store.throttle("put", times=2)
            Repository.open(store, password=PASSWORD).backup(kvbackup_tree.path)
            kvbackup_repo.restore("latest", tmp_path / "out")
            kvbackup_tree.assert_restored(tmp_path / "out")
            assert store.counts["throttle"] == 2

        def test_backup_while_the_store_is_down(kvbackup_repo, kvbackup_repo_url,
                                                kvbackup_faulty_store, kvbackup_tree):
            store = kvbackup_faulty_store(kvbackup_repo_url)
            store.fail("write", "groups/*", error="permanent")
            Repository.open(store, password=PASSWORD).backup(kvbackup_tree.path)
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*test_backup_while_the_store_is_down*", "E * kvbackup.errors.StoreError: *injected*"]
    )


def test_the_store_marker_runs_the_test_once_per_kind(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_kinds="""
        import pytest

        @pytest.mark.kvbackup_store("memory", "dir", "s3", "fsspec-memory")
        def test_repository_round_trip(kvbackup_repo, kvbackup_repo_url, kvbackup_store_kind):
            kvbackup_repo.backup([("hello.txt", b"hello")])
            assert [s.complete for s in kvbackup_repo.snapshots()] == [True]
            prefixes = {"memory": "memory://", "dir": "/", "s3": "s3://",
                        "fsspec-memory": "fsspec::memory://"}
            assert kvbackup_repo_url.startswith(prefixes[kvbackup_store_kind])

        def test_default_is_memory(kvbackup_repo_url):
            assert kvbackup_repo_url.startswith("memory://")
        """
    )
    result = run(pytester, "-v", "--strict-markers")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines_random(
        [f"*test_repository_round_trip?{kind}? PASSED*" for kind in ("memory", "dir", "s3")]
        + ["*test_repository_round_trip?fsspec-memory? PASSED*"]
    )


def test_a_store_kind_that_does_not_exist_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_typo="""
        import pytest

        @pytest.mark.kvbackup_store("sftp")
        def test_x(kvbackup_repo):
            pass
        """
    )
    result = run(pytester)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*kvbackup_store takes one or more of memory, dir, s3*'sftp'*"])


def test_the_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.kvbackup_store(*kinds): run the test once*"])


def test_each_test_gets_a_fresh_empty_bucket_on_one_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_buckets="""
        import boto3

        SEEN = []

        def client(s3):
            return boto3.client("s3", endpoint_url=s3.endpoint_url,
                                aws_access_key_id=s3.env["AWS_ACCESS_KEY_ID"],
                                aws_secret_access_key=s3.env["AWS_SECRET_ACCESS_KEY"],
                                region_name=s3.env["AWS_DEFAULT_REGION"])

        def test_first(kvbackup_s3_server):
            client(kvbackup_s3_server).put_object(Bucket=kvbackup_s3_server.bucket,
                                                  Key="left-over", Body=b"x")
            SEEN.append(kvbackup_s3_server)

        def test_second(kvbackup_s3_server):
            (first,) = SEEN
            assert kvbackup_s3_server.bucket != first.bucket
            assert kvbackup_s3_server.endpoint_url == first.endpoint_url
            assert kvbackup_s3_server.endpoint_url.startswith("http://127.0.0.1:")
            assert kvbackup_s3_server.env["AWS_ENDPOINT_URL"] == first.endpoint_url
            listing = client(kvbackup_s3_server).list_objects_v2(
                Bucket=kvbackup_s3_server.bucket)
            assert listing["KeyCount"] == 0
        """
    )
    run(pytester).assert_outcomes(passed=2)


def test_a_session_that_uses_no_fixture_imports_neither_boto3_nor_moto(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_light="""
        import sys

        def test_nothing_heavy_was_imported(request):
            assert request.config.pluginmanager.has_plugin("kvbackup") or \\
                request.config.pluginmanager.has_plugin("kvbackup.testkit.pytest_plugin")
            heavy = {"boto3", "botocore", "moto", "s3fs", "fsspec"} & set(sys.modules)
            assert not heavy
        """
    )
    # A separate interpreter: this one has imported boto3 long ago.
    result = pytester.runpytest_subprocess(*plugin_args())
    result.assert_outcomes(passed=1)


def test_importing_the_plugin_imports_neither_boto3_nor_moto() -> None:
    code = (
        f"import sys, {PLUGIN}; "
        "print(sorted({'boto3', 'botocore', 'moto', 's3fs', 'fsspec'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert done.stdout.strip() == "[]"


def test_every_testkit_name_resolves() -> None:
    import kvbackup.testkit as testkit

    for name in testkit.__all__:
        assert getattr(testkit, name) is not None
    with pytest.raises(AttributeError):
        _ = testkit.NoSuchThing  # type: ignore[attr-defined]
