"""Chunking: small files whole, large ones content-defined; ids keyed."""

from __future__ import annotations

import io
import os
import random

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


SEGMENTED = ChunkerParams(
    min_size=16 * 1024,
    avg_size=64 * 1024,
    max_size=256 * 1024,
    small_file=64 * 1024,
    segment_size=1 << 20,
)


def cut_offsets(chunks: list[bytes]) -> list[int]:
    ends, at = [], 0
    for chunk in chunks:
        at += len(chunk)
        ends.append(at)
    return ends


def test_a_segment_size_forces_a_cut_at_every_multiple_of_it() -> None:
    data = os.urandom((3 << 20) + 12_345)
    chunks = list(Chunker(SEGMENTED).chunks(io.BytesIO(data), len(data)))
    assert b"".join(chunks) == data
    ends = cut_offsets(chunks)
    assert {1 << 20, 2 << 20, 3 << 20} <= set(ends)
    assert all(len(c) <= SEGMENTED.max_size for c in chunks)
    # within a segment the cuts are content-defined as before: the first segment's chunks
    # are those of the first segment cut alone by FastCDC
    assert [e for e in ends if e <= 1 << 20] == Chunker(SEGMENTED).cut_points(data[: 1 << 20])


def test_without_a_segment_size_the_cuts_are_those_of_one_pass_over_the_file() -> None:
    """A repository made before segments existed keeps its cuts exactly: FastCDC over the
    whole file, no forced cut anywhere."""
    data = os.urandom(3 << 20)
    old = ChunkerParams(**{**SEGMENTED.as_dict(), "segment_size": None})
    chunks = list(Chunker(old).chunks(io.BytesIO(data), len(data)))
    assert cut_offsets(chunks) == Chunker(old).cut_points(data)
    segmented = cut_offsets(list(Chunker(SEGMENTED).chunks(io.BytesIO(data), len(data))))
    assert segmented != cut_offsets(chunks)  # so the test above could fail


def test_chunking_segments_alone_gives_the_chunks_of_the_whole_file() -> None:
    segment = 1 << 20
    data = os.urandom(4 * segment + 777)
    whole = list(Chunker(SEGMENTED).chunks(io.BytesIO(data), len(data)))
    parts: list[bytes] = []
    for start, length in [(0, segment), (segment, 2 * segment), (3 * segment, None)]:
        stream = io.BytesIO(data)
        stream.seek(start)
        parts += Chunker(SEGMENTED).segment_chunks(stream, length)
    assert parts == whole
    # segment 2 alone, from a stream that goes on past it
    stream = io.BytesIO(data)
    stream.seek(2 * segment)
    alone = list(Chunker(SEGMENTED).segment_chunks(stream, segment))
    ends = cut_offsets(whole)
    first = ends.index(2 * segment) + 1
    assert alone == whole[first : ends.index(3 * segment) + 1]


def test_a_shift_costs_about_two_chunks_per_segment_boundary_past_it() -> None:
    """The dedup cost of forced cuts (docs/format.md): bytes inserted near the start move
    the content across every later segment boundary, which re-cuts the chunks beside it."""
    rng = random.Random(16)  # fixed data: the count of new chunks is then the same every run
    data = rng.randbytes(4 << 20)
    edited = data[:1000] + rng.randbytes(100) + data[1000:]
    before = set(Chunker(SEGMENTED).chunks(io.BytesIO(data), len(data)))
    after = list(Chunker(SEGMENTED).chunks(io.BytesIO(edited), len(edited)))
    new = [c for c in after if c not in before]
    boundaries = len(edited) // SEGMENTED.segment_size  # type: ignore[operator]
    assert len(new) <= 2 + 2 * boundaries + 2
    assert len(after) > 40
