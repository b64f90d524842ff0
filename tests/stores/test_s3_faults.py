"""The S3 store behind a proxy that injects throttling, resets and timeouts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from faultproxy import FaultProxy
from s3servers import S3Server
from test_s3_store import open_s3

from kvbackup.errors import StoreError, TransientStoreError
from kvbackup.store import CountingStore, RetryingStore, RetryPolicy

FAST_RETRIES = RetryPolicy(attempts=8, base_delay=0.01, max_delay=0.1)


@pytest.fixture
def flaky(moto_s3: S3Server) -> Iterator[FaultProxy]:
    with FaultProxy(
        moto_s3.endpoint, slowdown=0.12, reset=0.08, slow=0.04, delay=1.2, seed=7
    ) as proxy:
        yield proxy


def test_workload_completes_correctly_through_injected_faults(
    moto_s3: S3Server, flaky: FaultProxy
) -> None:
    bucket = moto_s3.new_bucket()
    inner = open_s3(moto_s3, f"s3://{bucket}/repo", endpoint_url=flaky.endpoint, read_timeout="1")
    store = CountingStore(RetryingStore(inner, FAST_RETRIES))
    values = {f"groups/g1/packs/p{i:02d}": os.urandom(1000 + 37 * i) for i in range(40)}

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: store.put(*kv), values.items()))
        read = dict(zip(values, pool.map(store.get, values), strict=True))
        tails = list(pool.map(lambda k: store.get_range(k, -10, 0), values))
    assert read == values
    assert tails == [v[-10:] for v in values.values()]
    assert sorted(store.list("groups/g1/")) == sorted(values)
    for key in list(values)[:10]:
        store.delete(key)
    assert len(list(store.list("groups/"))) == 30

    # Every kind of fault happened, and each was retried rather than read as "absent".
    assert flaky.faults["slowdown"] > 0 and flaky.faults["reset"] > 0 and flaky.faults["slow"] > 0
    assert store.counts.put == 40
    assert (
        moto_s3.client().get_object(Bucket=bucket, Key="repo/groups/g1/packs/p39")["Body"].read()
        == values["groups/g1/packs/p39"]
    )


@pytest.mark.parametrize(("fault", "op"), [("slowdown", "put"), ("reset", "get"), ("slow", "list")])
def test_store_that_keeps_failing_ends_with_store_error_naming_store_and_op(
    moto_s3: S3Server, fault: str, op: str
) -> None:
    bucket = moto_s3.new_bucket()
    rates = {name: float(name == fault) for name in ("slowdown", "reset", "slow")}
    with FaultProxy(
        moto_s3.endpoint,
        slowdown=rates["slowdown"],
        reset=rates["reset"],
        slow=rates["slow"],
        delay=1.2,
    ) as proxy:
        inner = open_s3(
            moto_s3, f"s3://{bucket}/repo", endpoint_url=proxy.endpoint, read_timeout="0.5"
        )
        store = RetryingStore(inner, RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02))
        calls = {
            "put": lambda: store.put("snapshots/s1", b"x"),
            "get": lambda: store.get("snapshots/s1"),
            "list": lambda: list(store.list("snapshots/")),
        }
        with pytest.raises(StoreError) as info:
            calls[op]()
    assert not isinstance(info.value, TransientStoreError)
    message = str(info.value)
    assert message.startswith(f"s3://{bucket}/repo: {op} ")
    assert "failed after 3 attempts" in message
    assert proxy.faults[fault] == 3


def test_throttling_is_transient_not_absent(moto_s3: S3Server) -> None:
    bucket = moto_s3.new_bucket()
    with FaultProxy(moto_s3.endpoint, slowdown=1.0) as proxy:
        store = open_s3(moto_s3, f"s3://{bucket}", endpoint_url=proxy.endpoint)
        for op in (lambda: store.get("k"), lambda: store.exists("k")):
            with pytest.raises(TransientStoreError, match="SlowDown"):
                op()


def test_a_head_through_the_proxy_gives_the_objects_length(moto_s3: S3Server) -> None:
    """A HEAD's Content-Length is the object's (fsspec/s3fs size an opened file by it)."""
    import boto3

    bucket = moto_s3.new_bucket()
    moto_s3.client().put_object(Bucket=bucket, Key="k", Body=b"x" * 1234)
    with FaultProxy(moto_s3.endpoint) as proxy:
        client = boto3.client(
            "s3",
            endpoint_url=proxy.endpoint,
            aws_access_key_id=moto_s3.access_key,
            aws_secret_access_key=moto_s3.secret_key,
            region_name=moto_s3.region,
        )
        assert client.head_object(Bucket=bucket, Key="k")["ContentLength"] == 1234
