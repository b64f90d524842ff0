"""RetryingStore and CountingStore: retries, final errors, request accounting."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kvbackup.errors import KeyNotFoundError, StoreError, TransientStoreError
from kvbackup.store import CountingStore, MappingStore, RetryingStore, RetryPolicy, Store

NO_WAIT = RetryPolicy(attempts=4, base_delay=0, max_delay=0)


class Flaky(MappingStore):
    """Fails each operation ``failures`` times with a transient error, then works."""

    def __init__(self, failures: int, error: type[Exception] = TransientStoreError):
        super().__init__({}, description="flaky://x")
        self.failures = failures
        self.error = error
        self.calls = 0

    def _fail(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error("boom")

    def get(self, key: str) -> bytes:
        self._fail()
        return super().get(key)

    def put(self, key: str, value: bytes) -> None:
        self._fail()
        super().put(key, value)

    def list(self, prefix: str = "") -> Iterator[str]:
        self._fail()
        return super().list(prefix)


def test_transient_failures_are_retried_until_success() -> None:
    inner = Flaky(failures=3)
    store = RetryingStore(inner, NO_WAIT)
    store.put("k", b"v")
    assert inner.mapping == {"k": b"v"}
    assert inner.calls == 4


def test_persistent_failure_is_a_store_error_naming_store_and_operation() -> None:
    store = RetryingStore(Flaky(failures=100), NO_WAIT)
    with pytest.raises(StoreError) as info:
        store.get("snapshots/a")
    assert not isinstance(info.value, TransientStoreError)
    assert str(info.value) == "flaky://x: get snapshots/a failed after 4 attempts: boom"


def test_key_not_found_is_not_retried() -> None:
    inner = Flaky(failures=0)
    with pytest.raises(KeyNotFoundError):
        RetryingStore(inner, NO_WAIT).get("missing")
    assert inner.calls == 1


def test_permanent_error_is_not_retried() -> None:
    inner = Flaky(failures=1, error=StoreError)
    with pytest.raises(StoreError, match="boom"):
        RetryingStore(inner, NO_WAIT).put("k", b"v")
    assert inner.calls == 1


def test_listing_is_retried_from_the_start() -> None:
    inner = Flaky(failures=2)
    inner.mapping.update({"a/1": b"", "a/2": b"", "b/1": b""})
    assert sorted(RetryingStore(inner, NO_WAIT).list("a/")) == ["a/1", "a/2"]


def test_counting_store_counts_requests_and_bytes() -> None:
    store = CountingStore(MappingStore({}))
    store.put("a", b"12345")
    assert store.put_if_absent("a", b"xx") is False
    assert store.get("a") == b"12345"
    assert store.get_range("a", 1, 2) == b"23"
    with pytest.raises(KeyNotFoundError):
        store.get("missing")
    list(store.list())
    store.delete("a")
    assert store.counts.as_dict() == {
        "get": 3,
        "put": 2,
        "list": 1,
        "delete": 1,
        "bytes_read": 7,
        "bytes_written": 7,
    }


def test_counting_under_retrying_counts_every_attempt() -> None:
    counting = CountingStore(Flaky(failures=2))
    store = RetryingStore(counting, NO_WAIT)
    store.put("k", b"abc")
    assert counting.counts.put == 3


class Probing(MappingStore):
    """A store whose capability is found out on first use."""

    asked = 0

    @property
    def supports_put_if_absent(self) -> bool:  # type: ignore[override]
        self.asked += 1
        return True


def test_wrappers_ask_for_conditional_writes_only_when_needed() -> None:
    inner = Probing({})
    store: Store = CountingStore(RetryingStore(inner, NO_WAIT))
    assert inner.asked == 0
    assert store.supports_put_if_absent is True
    assert inner.asked == 1
