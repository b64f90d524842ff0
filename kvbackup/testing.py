"""The store conformance suite: behaviour every kvbackup store must have.

Store authors subclass :class:`StoreConformance` in a pytest module, override the ``store``
fixture, and get one test per rule of the store contract::

    import pytest
    from kvbackup.testing import StoreConformance

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def store(self, tmp_path):
            s = MyStore(tmp_path)
            yield s
            s.close()

Each test works under its own random key prefix, so the fixture may hand out the same
(non-empty) store every time. Class attributes tune the cost of the heavier tests. This
module needs pytest, which is only a test dependency of kvbackup.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from .errors import KeyNotFoundError
from .store import MAX_KEY_LENGTH, Store, check_key

__all__ = ["StoreConformance", "max_length_key"]


def max_length_key(prefix: str, length: int = MAX_KEY_LENGTH, segment: int = 100) -> str:
    """A valid key of exactly ``length`` characters starting with ``prefix`` (which ends with
    ``/``), in segments of at most ``segment`` characters (file names stay short)."""
    key = prefix
    while len(key) < length:
        room = length - len(key)
        if room <= segment:
            key += "k" * room
        else:
            key += "k" * (segment - 1) + "/"
    return check_key(key)


class StoreConformance:
    """Subclass as ``TestSomething`` and override the ``store`` fixture."""

    #: Size of the value in the large round-trip test.
    large_value_size: int = 3 * 2**20
    #: Threads and keys per thread in the concurrency test.
    threads: int = 8
    keys_per_thread: int = 12

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        """The store under test: override in the subclass."""
        raise NotImplementedError("override the `store` fixture")

    @pytest.fixture
    def ns(self) -> str:
        """A fresh key prefix for one test, so tests never see each other's keys."""
        return f"t{uuid.uuid4().hex[:12]}/"

    # -- round trips -----------------------------------------------------------------------

    def test_put_then_get_returns_the_value(self, store: Store, ns: str) -> None:
        store.put(ns + "a", b"hello")
        assert store.get(ns + "a") == b"hello"

    def test_get_returns_bytes(self, store: Store, ns: str) -> None:
        store.put(ns + "a", b"abc")
        value = store.get(ns + "a")
        assert type(value) is bytes and value == b"abc"

    def test_empty_value_round_trips(self, store: Store, ns: str) -> None:
        store.put(ns + "empty", b"")
        assert store.get(ns + "empty") == b""
        assert store.exists(ns + "empty")

    def test_large_value_round_trips(self, store: Store, ns: str) -> None:
        value = os.urandom(self.large_value_size)
        store.put(ns + "large", value)
        assert store.get(ns + "large") == value

    def test_every_byte_value_round_trips(self, store: Store, ns: str) -> None:
        value = bytes(range(256)) * 64 + b"\r\n\x00\r"
        store.put(ns + "binary", value)
        assert store.get(ns + "binary") == value

    def test_put_overwrites(self, store: Store, ns: str) -> None:
        store.put(ns + "a", b"first value, longer")
        store.put(ns + "a", b"second")
        assert store.get(ns + "a") == b"second"

    def test_key_of_maximum_length_round_trips(self, store: Store, ns: str) -> None:
        key = max_length_key(ns)
        assert len(key) == MAX_KEY_LENGTH
        store.put(key, b"long")
        assert store.get(key) == b"long"
        assert key in set(store.list(ns))

    def test_keys_with_every_allowed_character(self, store: Store, ns: str) -> None:
        key = ns + "AZaz09-_.x/Seg.ment_2-"
        store.put(key, b"v")
        assert store.get(key) == b"v"
        assert list(store.list(ns)) == [key]

    # -- absence ---------------------------------------------------------------------------

    def test_get_of_missing_key_raises_key_not_found(self, store: Store, ns: str) -> None:
        with pytest.raises(KeyNotFoundError) as info:
            store.get(ns + "missing")
        assert isinstance(info.value, KeyError)

    def test_get_under_missing_directory_raises_key_not_found(self, store: Store, ns: str) -> None:
        with pytest.raises(KeyNotFoundError):
            store.get(ns + "no/such/dir/key")

    def test_exists_tells_present_from_absent(self, store: Store, ns: str) -> None:
        store.put(ns + "here", b"x")
        assert store.exists(ns + "here") is True
        assert store.exists(ns + "gone") is False

    def test_delete_removes_the_key(self, store: Store, ns: str) -> None:
        store.put(ns + "a", b"x")
        store.put(ns + "b", b"y")
        store.delete(ns + "a")
        with pytest.raises(KeyNotFoundError):
            store.get(ns + "a")
        assert list(store.list(ns)) == [ns + "b"]

    def test_delete_of_missing_key_is_not_an_error(self, store: Store, ns: str) -> None:
        store.delete(ns + "never-written")
        store.delete(ns + "no/such/dir/key")

    # -- listing ---------------------------------------------------------------------------

    def _populate(self, store: Store, ns: str) -> set[str]:
        keys = {
            ns + "snapshots/20240101T000000Z-a",
            ns + "snapshots/20240102T000000Z-b",
            ns + "groups/ab12/packs/p1",
            ns + "groups/ab12/packs/p2",
            ns + "groups/ab12/index/i1",
            ns + "groups/ab34/packs/p3",
            ns + "groups/b999/packs/p4",
            ns + "config",
        }
        for key in keys:
            store.put(key, key.encode())
        return keys

    def test_list_by_directory_prefix(self, store: Store, ns: str) -> None:
        self._populate(store, ns)
        assert sorted(store.list(ns + "snapshots/")) == [
            ns + "snapshots/20240101T000000Z-a",
            ns + "snapshots/20240102T000000Z-b",
        ]

    def test_list_descends_into_nested_prefixes(self, store: Store, ns: str) -> None:
        self._populate(store, ns)
        assert sorted(store.list(ns + "groups/ab12/")) == [
            ns + "groups/ab12/index/i1",
            ns + "groups/ab12/packs/p1",
            ns + "groups/ab12/packs/p2",
        ]
        assert sorted(store.list(ns + "groups/ab12/packs/")) == [
            ns + "groups/ab12/packs/p1",
            ns + "groups/ab12/packs/p2",
        ]

    def test_list_by_partial_segment(self, store: Store, ns: str) -> None:
        self._populate(store, ns)
        assert sorted(store.list(ns + "groups/ab")) == [
            ns + "groups/ab12/index/i1",
            ns + "groups/ab12/packs/p1",
            ns + "groups/ab12/packs/p2",
            ns + "groups/ab34/packs/p3",
        ]
        assert sorted(store.list(ns + "snapshots/20240102")) == [
            ns + "snapshots/20240102T000000Z-b"
        ]

    def test_list_of_namespace_returns_exactly_the_keys_put(self, store: Store, ns: str) -> None:
        keys = self._populate(store, ns)
        listed = list(store.list(ns))
        assert len(listed) == len(set(listed)), "a key was listed twice"
        assert set(listed) == keys
        assert all(type(k) is str for k in listed)

    def test_list_without_prefix_includes_every_key(self, store: Store, ns: str) -> None:
        keys = self._populate(store, ns)
        assert keys <= set(store.list())

    def test_list_of_missing_prefix_is_empty(self, store: Store, ns: str) -> None:
        self._populate(store, ns)
        assert list(store.list(ns + "nothing/")) == []
        assert list(store.list(ns + "snapshots/2099")) == []

    def test_list_does_not_show_temporary_files(self, store: Store, ns: str) -> None:
        keys = {f"{ns}d/k{i}" for i in range(20)}
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda k: store.put(k, b"x" * 1000), sorted(keys)))
            list(pool.map(lambda k: store.put_if_absent(k, b"y"), sorted(keys)))
        assert set(store.list(ns)) == keys

    # -- ranges ----------------------------------------------------------------------------

    def test_get_range_reads_the_middle(self, store: Store, ns: str) -> None:
        store.put(ns + "r", b"0123456789")
        assert store.get_range(ns + "r", 2, 3) == b"234"
        assert store.get_range(ns + "r", 0, 1) == b"0"

    def test_get_range_with_negative_start_reads_the_tail(self, store: Store, ns: str) -> None:
        store.put(ns + "r", b"0123456789")
        assert store.get_range(ns + "r", -4, 0) == b"6789"
        assert store.get_range(ns + "r", -4, 99) == b"6789"

    def test_get_range_tail_longer_than_value_is_whole(self, store: Store, ns: str) -> None:
        store.put(ns + "r", b"0123456789")
        assert store.get_range(ns + "r", -100, 0) == b"0123456789"

    def test_get_range_past_the_end_is_short(self, store: Store, ns: str) -> None:
        store.put(ns + "r", b"0123456789")
        assert store.get_range(ns + "r", 8, 10) == b"89"
        assert store.get_range(ns + "r", 10, 5) == b""
        assert store.get_range(ns + "r", 50, 5) == b""

    def test_get_range_of_empty_value(self, store: Store, ns: str) -> None:
        store.put(ns + "e", b"")
        assert store.get_range(ns + "e", 0, 10) == b""
        assert store.get_range(ns + "e", -10, 0) == b""

    def test_get_range_of_large_value(self, store: Store, ns: str) -> None:
        value = os.urandom(2**20 + 17)
        store.put(ns + "big", value)
        assert store.get_range(ns + "big", 2**19, 4096) == value[2**19 : 2**19 + 4096]
        assert store.get_range(ns + "big", -1000, 0) == value[-1000:]

    def test_get_range_of_missing_key_raises_key_not_found(self, store: Store, ns: str) -> None:
        with pytest.raises(KeyNotFoundError):
            store.get_range(ns + "missing", 0, 10)
        with pytest.raises(KeyNotFoundError):
            store.get_range(ns + "missing", -10, 0)

    # -- conditional writes ----------------------------------------------------------------

    def test_put_if_absent_writes_once(self, store: Store, ns: str) -> None:
        assert store.put_if_absent(ns + "lock", b"first") is True
        assert store.put_if_absent(ns + "lock", b"second") is False
        assert store.get(ns + "lock") == b"first"

    def test_put_if_absent_with_same_value_object_reports_existing(
        self, store: Store, ns: str
    ) -> None:
        value = b"same"
        assert store.put_if_absent(ns + "lock", value) is True
        assert store.put_if_absent(ns + "lock", value) is False

    def test_put_if_absent_after_delete_writes_again(self, store: Store, ns: str) -> None:
        assert store.put_if_absent(ns + "lock", b"one") is True
        store.delete(ns + "lock")
        assert store.put_if_absent(ns + "lock", b"two") is True
        assert store.get(ns + "lock") == b"two"

    def test_put_if_absent_does_not_replace_a_plain_put(self, store: Store, ns: str) -> None:
        store.put(ns + "lock", b"put")
        assert store.put_if_absent(ns + "lock", b"conditional") is False
        assert store.get(ns + "lock") == b"put"

    def test_racing_put_if_absent_has_one_winner(self, store: Store, ns: str) -> None:
        if not store.supports_put_if_absent:
            pytest.skip("the store declares no atomic put_if_absent")
        contenders = max(4, min(store.concurrency, 16))
        barrier = threading.Barrier(contenders)

        def contend(i: int) -> bool:
            barrier.wait()
            return store.put_if_absent(ns + "race", f"winner {i}".encode())

        with ThreadPoolExecutor(contenders) as pool:
            results = list(pool.map(contend, range(contenders)))
        assert results.count(True) == 1
        assert store.get(ns + "race") == f"winner {results.index(True)}".encode()

    # -- concurrency and declared capabilities ---------------------------------------------

    def test_concurrent_puts_and_gets_of_distinct_keys(self, store: Store, ns: str) -> None:
        def work(t: int) -> list[tuple[str, bytes]]:
            written = []
            for i in range(self.keys_per_thread):
                key, value = f"{ns}c{t % 3}/k{t}-{i}", os.urandom(1 + 997 * i)
                store.put(key, value)
                written.append((key, value))
            return [(k, v) for k, v in written if store.get(k) != v]

        with ThreadPoolExecutor(self.threads) as pool:
            wrong = [bad for result in pool.map(work, range(self.threads)) for bad in result]
        assert wrong == []
        assert len(set(store.list(ns))) == self.threads * self.keys_per_thread

    def test_declares_its_capabilities(self, store: Store) -> None:
        assert isinstance(store.supports_get_range, bool)
        assert isinstance(store.supports_put_if_absent, bool)
        assert isinstance(store.concurrency, int) and store.concurrency >= 1
        assert isinstance(store.description, str) and store.description
