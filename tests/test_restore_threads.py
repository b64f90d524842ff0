"""The threaded restore writer: the fetching threads decode each chunk and write it at its
offset, in whatever order chunks arrive, and a file takes its name only when complete.

End to end (the real command, small chunks and packs so that a file spans many packs):
bytes and metadata of many files, hard links and sparse files come out identical; a chunk
damaged in the middle of a big file costs that file alone, with the one-line error and exit
code, no partial file and no temporary. In the writer itself: chunks written in any order
from several threads, with the open temporaries bounded.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import snapshot_of
from kvtools import chunks_of, flip_byte, init_repo, kvb, open_repo, write_tree

from kvbackup.errors import CorruptionError, ExitCode
from kvbackup.ops.restore_target import RestoreTarget, ThreadedFileWriter
from kvbackup.sources import FILE, Entry

KIB = 1024
MTIME = 1_700_000_000_000_000_000


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def temp_leftovers(root: Path) -> list[Path]:
    return list(root.rglob(".kvbackup-*"))


def many_files_tree(root: Path, rng: random.Random) -> Path:
    """Hundreds of small files in nested folders, big files spanning many packs, hard
    links, a sparse file, odd modes and set times."""
    files: dict[str, bytes] = {}
    for n in range(300):
        files[f"d{n % 7}/sub{n % 3}/f{n}.txt"] = rng.randbytes(rng.randrange(0, 6000))
    for n in range(4):  # 64 KiB .. 1.2 MiB: dozens of chunks in dozens of 48 KiB packs
        files[f"big/b{n}.bin"] = rng.randbytes(rng.randrange(64 * KIB, 1200 * KIB))
    write_tree(root, files)
    os.link(root / "big/b0.bin", root / "d0/hard-b0.bin")
    os.link(root / "d1/sub1/f1.txt", root / "d2/hard-f1.txt")
    with open(root / "sparse.img", "wb") as fh:  # data, a 3 MiB hole, data, a hole at the end
        fh.write(rng.randbytes(40 * KIB))
        fh.seek(3 * 1024 * KIB, os.SEEK_CUR)
        fh.write(rng.randbytes(20 * KIB))
        fh.truncate(4 * 1024 * KIB)
    (root / "d3/sub0/f3.txt").chmod(0o640)
    (root / "big/b1.bin").chmod(0o600)
    for path in sorted(root.rglob("*"), reverse=True):  # children before their folders
        os.utime(path, ns=(MTIME + len(str(path)), MTIME + len(str(path))))
    os.utime(root, ns=(MTIME, MTIME))
    return root


@pytest.mark.parametrize(("verify", "writers"), [(False, "8"), (True, "2"), (False, "0")])
def test_many_files_across_many_packs_restore_identically(
    tmp_path: Path, cache: Path, verify: bool, writers: str
) -> None:
    src = many_files_tree(tmp_path / "src", random.Random(14))
    location = str(tmp_path / "repo")
    init_repo(location).backup(src)
    with open_repo(location) as repo:
        packs = {loc.pack_id for loc in chunks_of(repo, "latest", "big/b3.bin")}
    assert len(packs) > 5  # the premise: one file's chunks come from many packs
    target = tmp_path / "target"
    kvb("restore", "latest", target, "--repo", location, "--writers", writers,
        *(["--verify"] if verify else []), cache=cache)  # fmt: skip
    restored = target
    assert snapshot_of(restored) == snapshot_of(src)
    assert temp_leftovers(target) == []
    for a, b in [("big/b0.bin", "d0/hard-b0.bin"), ("d1/sub1/f1.txt", "d2/hard-f1.txt")]:
        assert os.stat(restored / a).st_ino == os.stat(restored / b).st_ino
    sparse = os.stat(restored / "sparse.img")
    assert sparse.st_size == 4 * 1024 * KIB
    assert sparse.st_blocks * 512 < 1024 * KIB  # the holes stayed holes


@pytest.mark.parametrize("writers", ["0", "4"])
def test_a_chunk_damaged_in_the_middle_of_a_big_file_costs_that_file_alone(
    tmp_path: Path, cache: Path, writers: str
) -> None:
    rng = random.Random(7)
    src = write_tree(
        tmp_path / "src",
        {"big.bin": rng.randbytes(900 * KIB), "a.txt": b"a\n", "dir/c.bin": rng.randbytes(99_000)},
    )
    location = str(tmp_path / "repo")
    init_repo(location).backup(src)
    with open_repo(location) as repo:
        chunks = chunks_of(repo, "latest", "big.bin")
        assert len(chunks) > 20
        damaged = chunks[len(chunks) // 2]
        flip_byte(repo, repo.resolve_snapshot("latest").group, damaged)
    target = tmp_path / "target"
    done = kvb("restore", "latest", target, "--repo", location, "--writers", writers,
               cache=cache, expect=ExitCode.CORRUPT)  # fmt: skip
    lines = done.stderr.decode().splitlines()
    about_big = [line for line in lines if "big.bin" in line]
    assert len(about_big) == 1 and "big.bin: not restored" in about_big[0], lines
    assert "Traceback" not in done.stderr.decode()
    assert not (target / "big.bin").exists()  # no partial file under its name
    assert (target / "a.txt").read_bytes() == b"a\n"
    assert (target / "dir/c.bin").read_bytes() == (src / "dir/c.bin").read_bytes()
    assert temp_leftovers(target) == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Path:
    """A 1 MiB tmpfs (needs root; skipped otherwise)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True)  # fmt: skip
    if made.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("writers", ["0", "4"])
def test_a_full_disk_stops_the_restore_with_exit_19_and_no_temporary_left(
    tmp_path: Path, cache: Path, small_disk: Path, writers: str
) -> None:
    rng = random.Random(3)
    files = {f"f{n}.bin": rng.randbytes(60 * KIB) for n in range(40)}  # 2.4 MB for 1 MiB
    src = write_tree(tmp_path / "src", files)
    location = str(tmp_path / "repo")
    init_repo(location).backup(src)
    done = kvb("restore", "latest", small_disk, "--repo", location, "--writers", writers,
               cache=cache, expect=ExitCode.TARGET)  # fmt: skip
    assert "Traceback" not in done.stderr.decode()
    assert temp_leftovers(small_disk) == []
    for path in small_disk.glob("*.bin"):  # what did take its name is whole
        assert path.read_bytes() == files[path.name]


def _chunked(rng: random.Random, n: int) -> list[bytes]:
    """``n`` chunks of random sizes, some all zeros (holes in a sparse file)."""
    return [
        bytes(rng.choice([4096, 9000]))
        if rng.random() < 0.3
        else rng.randbytes(rng.randrange(1, 20_000))
        for _ in range(n)
    ]


@pytest.mark.parametrize("sparse", [False, True])
def test_chunks_written_in_any_order_by_several_threads_make_whole_files(
    tmp_path: Path, sparse: bool
) -> None:
    """Chunks of twelve files, shuffled together, written by four threads with at most two
    temporaries open: each file is whole (read back and hashed), named, and no temporary
    is left; a damaged chunk costs its file alone."""
    rng = random.Random(5)
    out = RestoreTarget(tmp_path)
    failures: list[tuple[bytes, Exception]] = []
    done: list[bytes] = []
    writer = ThreadedFileWriter(
        out,
        lambda entry, exc: failures.append((entry.path, exc)),
        lambda entry: done.append(entry.path),
        verifier=lambda data, cid: hashlib.sha256(data).digest() == cid,
        writers=4,
        max_open=2,
    )
    contents: dict[bytes, list[bytes]] = {}
    work = []
    for n in range(12):
        chunks = _chunked(rng, 15)
        path = f"f{n}".encode()
        contents[path] = chunks
        entry = Entry(
            path=path,
            kind=FILE,
            size=sum(map(len, chunks)),
            mode=0o640,
            mtime_ns=MTIME,
            chunks=[hashlib.sha256(c).digest() for c in chunks],
            sparse=sparse,
        )
        out.parent_dir(path)
        job = writer.add(entry, [len(c) for c in chunks])
        work += [(job, i, c) for i, c in enumerate(chunks)]
    damaged_job, damaged_i, _ = work[-3]
    work[-3] = (damaged_job, damaged_i, CorruptionError("injected"))
    rng.shuffle(work)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda w: writer.write(*w), work))
    writer.close()
    lost = damaged_job.entry.path
    assert [p for p, _ in failures] == [lost]
    assert sorted(done) == sorted(p for p in contents if p != lost)
    assert not (tmp_path / os.fsdecode(lost)).exists()
    for path in done:
        restored = tmp_path / os.fsdecode(path)
        assert restored.read_bytes() == b"".join(contents[path])
        assert restored.stat().st_mtime_ns == MTIME and restored.stat().st_mode & 0o777 == 0o640
    assert temp_leftovers(tmp_path) == []
    assert 1 < writer.peak_open <= 2 + 4  # bounded: max_open, plus one per writing thread


def test_a_file_closed_to_bound_open_files_is_reopened_not_truncated(tmp_path: Path) -> None:
    """With one temporary open at a time, writing two files alternately closes and reopens
    each between its chunks: every chunk written before survives."""
    out = RestoreTarget(tmp_path)
    writer = ThreadedFileWriter(
        out, lambda e, exc: pytest.fail(str(exc)), lambda e: None, max_open=1
    )
    jobs = []
    for name in (b"x", b"y"):
        entry = Entry(path=name, kind=FILE, size=9, mtime_ns=MTIME, chunks=[b"a", b"b", b"c"])
        jobs.append(writer.add(entry, [3, 3, 3]))
    for i in (2, 0, 1):
        for job in jobs:
            writer.write(job, i, job.entry.path * 2 + str(i).encode())
    writer.close()
    assert (tmp_path / "x").read_bytes() == b"xx0xx1xx2"
    assert (tmp_path / "y").read_bytes() == b"yy0yy1yy2"
    assert writer.peak_open == 2  # the one open, and the next one before the other closed
