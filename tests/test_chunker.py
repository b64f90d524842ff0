"""Chunking: small files whole, large ones content-defined; ids keyed."""

from __future__ import annotations

import io
import os

from kvbackup.format.chunker import Chunker, ChunkerParams, ChunkHasher

PARAMS = ChunkerParams(
    min_size=16 * 1024, avg_size=64 * 1024, max_size=256 * 1024, small_file=64 * 1024
)


def test_a_small_file_is_one_chunk() -> None:
    data = os.urandom(60_000)
    assert list(Chunker(PARAMS).chunks(io.BytesIO(data), len(data))) == [data]


def test_an_empty_file_has_no_chunk() -> None:
    assert list(Chunker(PARAMS).chunks(io.BytesIO(b""), 0)) == []


def test_a_large_file_is_cut_within_bounds_and_reassembles() -> None:
    data = os.urandom(2 << 20)
    chunks = list(Chunker(PARAMS).chunks(io.BytesIO(data), len(data)))
    assert b"".join(chunks) == data
    assert len(chunks) > 8
    assert all(len(c) <= PARAMS.max_size for c in chunks)
    assert all(len(c) >= PARAMS.min_size for c in chunks[:-1])


def test_a_file_larger_than_its_stat_size_is_read_to_the_end() -> None:
    data = os.urandom(500_000)
    chunks = list(Chunker(PARAMS).chunks(io.BytesIO(data), 10))
    assert b"".join(chunks) == data


def test_an_insertion_changes_only_the_chunks_around_it() -> None:
    data = os.urandom(4 << 20)
    edited = data[: 2 << 20] + os.urandom(100) + data[2 << 20 :]
    before = set(Chunker(PARAMS).chunks(io.BytesIO(data), len(data)))
    after = list(Chunker(PARAMS).chunks(io.BytesIO(edited), len(edited)))
    new = [c for c in after if c not in before]
    assert 1 <= len(new) <= 3
    assert len(after) > 20


def test_chunk_ids_depend_on_the_key() -> None:
    data = b"same content"
    a, b = ChunkHasher(b"a" * 32), ChunkHasher(b"b" * 32)
    assert a(data) == a(data)
    assert a(data) != b(data)
    assert len(a(data)) == 32
