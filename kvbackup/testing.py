"""Conformance suites: behaviour every kvbackup store, source and transform must have.

Plugin authors subclass :class:`StoreConformance`, :class:`SourceConformance` or
:class:`TransformConformance` in a pytest module, override one fixture, and get one test per
rule of the contract::

    import pytest
    from kvbackup.testing import StoreConformance

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def store(self, tmp_path):
            s = MyStore(tmp_path)
            yield s
            s.close()

Store tests each work under their own random key prefix, so the fixture may hand out the same
(non-empty) store every time. Class attributes tune the cost of the heavier tests. This
module needs pytest, which is only a test dependency of kvbackup. ``docs/plugins.md`` shows
a third-party package using all three suites.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import kvbackup

from .errors import KeyNotFoundError
from .format.keyslots import KeyMaterial
from .sources import DIR, FILE, KINDS, Entry, Source, check_relative_path
from .store import MAX_KEY_LENGTH, Store, check_key
from .transforms import Transform, TransformError

__all__ = ["SourceConformance", "StoreConformance", "TransformConformance", "max_length_key"]


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


# ====================================================================== sources

#: Builds a source holding ``files`` (relative ``/``-separated paths -> content).
MakeSource = Callable[[dict[bytes, bytes]], Source]


def read_source(source: Source) -> dict[bytes, bytes]:
    """Every file of ``source`` with its content, as the engine reads them."""
    files: dict[bytes, bytes] = {}
    for entry in source.scan(_raise):
        if entry.kind == FILE:
            with source.open(entry) as fh:
                files[entry.path] = _read_all(fh)
    return files


def _read_all(fh: Any) -> bytes:
    parts: list[bytes] = []
    while True:
        part = fh.read(1 << 20)
        if not part:
            return b"".join(parts)
        parts.append(bytes(part))


def _read_exactly(fh: Any, n: int) -> bytes:
    parts: list[bytes] = []
    while n > 0:
        part = fh.read(n)
        if not part:
            break
        parts.append(bytes(part))
        n -= len(part)
    return b"".join(parts)


def _raise(path: bytes, exc: Exception) -> None:
    raise AssertionError(f"the source reported {path!r} as unreadable: {exc}")


class SourceConformance:
    """Subclass as ``TestSomething`` and override the ``make_source`` fixture: it returns a
    function that builds a source holding the given files (folders are implied by the
    paths). Override :meth:`break_file` to test how an unreadable file is reported."""

    #: Size of the file in the large-file test.
    large_file_size: int = 3 * 2**20
    #: The source can hold names that are not valid UTF-8.
    non_utf8_names: bool = True

    @pytest.fixture
    def make_source(self, tmp_path: Path) -> MakeSource:
        """Returns ``files -> Source``: override in the subclass."""
        raise NotImplementedError("override the `make_source` fixture")

    def break_file(self, source: Source, entry: Entry) -> None:
        """Make the content of ``entry`` (already scanned) unreadable; skips by default."""
        pytest.skip("the subclass does not say how to make a file unreadable")

    SAMPLE = {
        b"a.txt": b"hello world\n",
        b"empty": b"",
        b"dir/b.bin": bytes(range(256)) * 4,
        b"dir/sub/c.txt": b"nested " * 100,
        b"dir/sub/d": b"\x00\r\n\x00",
        b"z-last": b"z",
    }

    def test_scan_yields_every_file_with_its_content(self, make_source: MakeSource) -> None:
        assert read_source(make_source(dict(self.SAMPLE))) == self.SAMPLE

    def test_entries_have_safe_unique_paths_and_known_kinds(self, make_source: MakeSource) -> None:
        entries = list(make_source(dict(self.SAMPLE)).scan(_raise))
        paths = [e.path for e in entries]
        assert len(paths) == len(set(paths)), "an entry was yielded twice"
        for entry in entries:
            assert isinstance(entry.path, bytes)
            assert check_relative_path(entry.path) == entry.path
            assert entry.kind in KINDS
        assert {e.path for e in entries if e.kind == FILE} == set(self.SAMPLE)

    def test_file_sizes_match_their_content_or_are_unknown(self, make_source: MakeSource) -> None:
        for entry in make_source(dict(self.SAMPLE)).scan(_raise):
            if entry.kind == FILE:
                assert entry.size in (len(self.SAMPLE[entry.path]), -1)

    def test_an_ordered_source_yields_sorted_entries_parents_first(
        self, make_source: MakeSource
    ) -> None:
        source = make_source(dict(self.SAMPLE))
        if not source.ordered:
            pytest.skip("the source is not ordered")
        entries = list(source.scan(_raise))
        keys = [e.sort_key() for e in entries]
        assert keys == sorted(keys)
        seen_dirs = {e.path for e in entries if e.kind == DIR}
        for entry in entries:
            parent = entry.path.rpartition(b"/")[0]
            assert not parent or parent in seen_dirs, f"{entry.path!r} before its folder"

    def test_an_empty_source_yields_no_file(self, make_source: MakeSource) -> None:
        assert read_source(make_source({})) == {}

    def test_a_large_file_is_read_whole(self, make_source: MakeSource) -> None:
        content = os.urandom(self.large_file_size)
        assert read_source(make_source({b"large.bin": content})) == {b"large.bin": content}

    def test_ranged_reads_read_from_any_offset(self, make_source: MakeSource) -> None:
        """A source that declares ``ranged_reads`` seeks: the bytes from an offset (to the
        end, or a given length) are the file's bytes there."""
        content = os.urandom(self.large_file_size)
        source = make_source({b"large.bin": content})
        if not source.ranged_reads:
            pytest.skip("the source does not declare ranged reads")
        (entry,) = [e for e in source.scan(_raise) if e.kind == FILE]
        start = len(content) // 3 + 1
        with source.open(entry) as fh:
            fh.seek(start)
            assert _read_all(fh) == content[start:]
        with source.open(entry) as fh:
            fh.seek(start * 2)
            assert _read_exactly(fh, 1000) == content[start * 2 : start * 2 + 1000]
            fh.seek(10)
            assert _read_exactly(fh, 10) == content[10:20]

    def test_threaded_reads_read_on_several_threads_while_the_scan_goes_on(
        self, make_source: MakeSource
    ) -> None:
        """A source that declares ``threaded_reads`` gives every file's bytes when files are
        opened and read on several threads at once, each as soon as the scan yields it."""
        files = {b"t/f%03d.bin" % n: os.urandom(100 + n * 37) for n in range(64)}
        source = make_source(dict(files))
        if not source.threaded_reads:
            pytest.skip("the source does not declare threaded reads")

        def read(entry: Entry) -> tuple[bytes, bytes]:
            with source.open(entry) as fh:
                return entry.path, _read_all(fh)

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(read, e) for e in source.scan(_raise) if e.kind == FILE]
            assert dict(f.result() for f in futures) == files
        source.close()

    def test_a_name_that_is_not_utf8_round_trips(self, make_source: MakeSource) -> None:
        if not self.non_utf8_names:
            pytest.skip("the source cannot hold names that are not UTF-8")
        files = {b"latin1-\xe9t\xe9.bin": b"bytes name", "ünï/文件".encode(): b"unicode"}
        assert read_source(make_source(files)) == files

    def test_scans_of_the_same_files_are_the_same(self, make_source: MakeSource) -> None:
        one, two = make_source(dict(self.SAMPLE)), make_source(dict(self.SAMPLE))
        assert isinstance(one.identity, str) and one.identity
        listing = [(e.path, e.kind, e.size) for e in one.scan(_raise)]
        assert listing == [(e.path, e.kind, e.size) for e in two.scan(_raise)]
        one.close()
        two.close()

    def test_an_unreadable_file_raises_oserror(self, make_source: MakeSource) -> None:
        source = make_source({b"ok.txt": b"fine", b"gone.txt": b"soon unreadable"})
        entries = {e.path: e for e in source.scan(_raise)}
        self.break_file(source, entries[b"gone.txt"])
        with pytest.raises(OSError):
            _read_all(source.open(entries[b"gone.txt"]))
        assert _read_all(source.open(entries[b"ok.txt"])) == b"fine"

    def test_backup_and_restore_round_trip_through_the_engine(
        self, make_source: MakeSource, tmp_path: Path
    ) -> None:
        files = dict(self.SAMPLE)
        repo = kvbackup.Repository.init({}, encryption="none")
        result = repo.backup(make_source(files))
        assert result.stats.files == len(files) and not result.skipped
        restored = repo.restore("latest", tmp_path / "restored")
        assert not restored.errors
        base = os.fsencode(tmp_path / "restored")
        for path, content in files.items():
            with open(os.path.join(base, path), "rb") as fh:
                assert fh.read() == content


# ====================================================================== transforms

#: A fixed master key for transform tests (never use it for anything real).
TEST_KEYS = KeyMaterial(bytes(range(32)))


class TransformConformance:
    """Subclass as ``TestSomething`` and override the ``transform`` fixture (the ``keys``
    fixture gives a fixed :class:`~kvbackup.KeyMaterial` for its factory)."""

    #: Size of the inputs of the large round trips.
    large_size: int = 4 * 2**20
    #: A transform that does not authenticate gives the same output for the same input.
    deterministic: bool = True
    #: Damaged input raises :class:`~kvbackup.errors.TransformError`; ``None``: if it
    #: authenticates (a compressor need not notice damage: the envelope checksum does).
    detects_damage: bool | None = None

    @pytest.fixture
    def keys(self) -> KeyMaterial:
        return TEST_KEYS

    @pytest.fixture
    def transform(self, keys: KeyMaterial) -> Transform:
        """The transform under test: override in the subclass."""
        raise NotImplementedError("override the `transform` fixture")

    AAD = b"\x4b\x56\x01\x06\x00chunk-id"

    def _round_trip(self, t: Transform, data: bytes) -> None:
        out = t.encode(data, self.AAD)
        if out is None:
            assert not t.authenticates, "an authenticating transform declined to apply"
            return
        assert isinstance(out, bytes)
        assert t.decode(out, self.AAD) == data

    def _detects(self, t: Transform) -> bool:
        return t.authenticates if self.detects_damage is None else self.detects_damage

    def test_declares_its_name_and_whether_it_authenticates(self, transform: Transform) -> None:
        assert isinstance(transform, Transform)
        assert isinstance(transform.name, str) and transform.name
        assert transform.name.isascii() and len(transform.name) <= 255
        assert isinstance(transform.authenticates, bool)

    @pytest.mark.parametrize(
        "data",
        [b"", b"x", b"hello world\n" * 50, bytes(range(256)) * 16, b"\x00" * 4096],
        ids=["empty", "one-byte", "text", "every-byte", "zeros"],
    )
    def test_small_inputs_round_trip(self, transform: Transform, data: bytes) -> None:
        self._round_trip(transform, data)

    def test_large_random_input_round_trips(self, transform: Transform) -> None:
        self._round_trip(transform, os.urandom(self.large_size))

    def test_large_compressible_input_round_trips(self, transform: Transform) -> None:
        self._round_trip(transform, b"kvbackup conformance " * (self.large_size // 21))

    def test_an_authenticating_transform_never_declines(self, transform: Transform) -> None:
        if not transform.authenticates:
            pytest.skip("the transform does not authenticate")
        for data in (b"", os.urandom(1000), b"a" * 100000):
            assert transform.encode(data, self.AAD) is not None

    def test_encoding_is_deterministic_or_freshly_randomised(self, transform: Transform) -> None:
        data = b"the same input, twice " * 100
        one, two = transform.encode(data, self.AAD), transform.encode(data, self.AAD)
        if transform.authenticates:
            assert one != two, "an AEAD must use a fresh nonce for every object"
        elif self.deterministic:
            assert one == two

    def test_decoding_is_repeatable(self, transform: Transform) -> None:
        data = os.urandom(5000) + b"z" * 5000
        out = transform.encode(data, self.AAD)
        if out is None:
            pytest.skip("the transform declined this input")
        assert transform.decode(out, self.AAD) == transform.decode(out, self.AAD) == data

    def test_damaged_input_raises_transform_error(self, transform: Transform) -> None:
        data = b"precious data " * 500
        out = transform.encode(data, self.AAD)
        if out is None:
            pytest.skip("the transform declined this input")
        damaged = [out[: len(out) // 2], out[:-1], b"", os.urandom(len(out))]
        for position in (0, len(out) // 2, len(out) - 1):
            flipped = bytearray(out)
            flipped[position] ^= 0x01
            damaged.append(bytes(flipped))
        for blob in damaged:
            if self._detects(transform):
                with pytest.raises(TransformError):
                    transform.decode(blob, self.AAD)
            else:
                with contextlib.suppress(TransformError):  # may not notice; must not crash
                    assert isinstance(transform.decode(blob, self.AAD), bytes)

    def test_other_associated_data_is_rejected(self, transform: Transform) -> None:
        if not transform.authenticates:
            pytest.skip("the transform does not authenticate")
        out = transform.encode(b"bound to its place", self.AAD)
        assert out is not None
        with pytest.raises(TransformError):
            transform.decode(out, self.AAD + b"-elsewhere")

    def test_threads_can_share_the_transform(self, transform: Transform) -> None:
        def work(n: int) -> bool:
            data = os.urandom(1000 * n) + bytes([n]) * 20000
            out = transform.encode(data, self.AAD)
            return out is None or transform.decode(out, self.AAD) == data

        with ThreadPoolExecutor(8) as pool:
            assert all(pool.map(work, range(1, 33)))
