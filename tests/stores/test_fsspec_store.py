"""The fsspec store on memory://, file:// and s3:// (s3fs against moto_server)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import kvbackup_fsspec
import pytest
from kvbackup_fsspec.options import coerce, filesystem_options, storage_options
from s3servers import S3Server

from kvbackup.errors import KeyNotFoundError, StoreError
from kvbackup.store import Store
from kvbackup.testing import StoreConformance


class TestFsspecMemory(StoreConformance):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        yield kvbackup_fsspec._factory(f"fsspec::memory://kvb-{uuid.uuid4().hex}/repo", {})


class TestFsspecLocal(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        yield kvbackup_fsspec._factory(f"fsspec::file://{tmp_path}/repo", {"create": "true"})


class TestFsspecS3(StoreConformance):
    @pytest.fixture
    def store(self, moto_s3: S3Server) -> Iterator[Store]:
        bucket = moto_s3.new_bucket()
        options = {
            "key": moto_s3.access_key,
            "secret": moto_s3.secret_key,
            "endpoint_url": moto_s3.endpoint,
            "client_kwargs.region_name": moto_s3.region,
            "skip_instance_cache": "true",
        }
        yield kvbackup_fsspec._factory(f"fsspec::s3://{bucket}/repo", options)


def test_storage_options_are_coerced_from_strings() -> None:
    assert coerce("true") is True and coerce("False") is False
    assert coerce("none") is None
    assert coerce("16") == 16 and coerce("0.5") == 0.5
    assert coerce('{"region_name": "eu-west-1"}') == {"region_name": "eu-west-1"}
    assert coerce("eu-west-1") == "eu-west-1"
    assert storage_options({"a.b": "1", "a.c": "x", "concurrency": "4"}) == {
        "a": {"b": 1, "c": "x"}
    }


def test_local_put_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = kvbackup_fsspec._factory(f"file://{tmp_path}", {})
    store.put("a/b", b"x" * 100)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"]


def test_temporary_files_on_disk_are_not_listed(tmp_path: Path) -> None:
    store = kvbackup_fsspec._factory(f"file://{tmp_path}", {})
    store.put("a/b", b"x")
    (tmp_path / "a" / ".tmp-123").write_bytes(b"partial")
    assert list(store.list()) == ["a/b"]


def test_s3fs_missing_bucket_is_never_created_by_a_put(moto_s3: S3Server) -> None:
    # s3fs reports a missing bucket as FileNotFoundError: a get is "absent", a put fails.
    options = {"key": "k", "secret": "s", "endpoint_url": moto_s3.endpoint}
    store = kvbackup_fsspec._factory("fsspec::s3://no-such-bucket-kvb/repo", options)
    with pytest.raises(KeyNotFoundError):
        store.get("config")
    with pytest.raises(StoreError, match="does not exist"):
        store.put("config", b"x")
    buckets = [b["Name"] for b in moto_s3.client().list_buckets()["Buckets"]]
    assert "no-such-bucket-kvb" not in buckets


def test_local_root_is_not_created_implicitly(tmp_path: Path) -> None:
    store = kvbackup_fsspec._factory(f"file://{tmp_path}/repo", {})
    with pytest.raises(StoreError, match="does not exist"):
        store.put("a/b", b"x")
    assert not (tmp_path / "repo").exists()


def test_unknown_protocol_names_the_problem() -> None:
    with pytest.raises(StoreError, match="nosuchproto"):
        kvbackup_fsspec._factory("nosuchproto://x", {})


def test_a_byte_range_reads_from_a_server_that_checksums_whole_objects(
    rclone_s3: S3Server,
) -> None:
    """rclone's S3 server sends the whole object's checksum with a ranged GET; botocore
    rejected it (FlexibleChecksumError) until the fsspec store, like the S3 store, checked
    response checksums only where S3 requires them."""
    bucket = rclone_s3.new_bucket()
    options = {
        "key": rclone_s3.access_key,
        "secret": rclone_s3.secret_key,
        "endpoint_url": rclone_s3.endpoint,
    }
    store = kvbackup_fsspec._factory(f"fsspec::s3://{bucket}/repo", options)
    data = bytes(range(256)) * 4096
    store.put("packs/ab/cd", data)
    assert store.get_range("packs/ab/cd", 1000, 5000) == data[1000:6000]


def test_the_s3_checksum_default_gives_way_to_the_users_option() -> None:
    opened = filesystem_options(
        "s3://b/r", {"config_kwargs.response_checksum_validation": "when_supported"}
    )
    assert opened["config_kwargs"] == {"response_checksum_validation": "when_supported"}
    assert filesystem_options("s3://b/r", {})["config_kwargs"] == {
        "response_checksum_validation": "when_required"
    }
    assert "config_kwargs" not in filesystem_options("memory://b/r", {})
