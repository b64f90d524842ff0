"""Backups spread over a Dask LocalCluster of worker processes, into an S3 repository on a
test S3 server: the snapshot is the one a one-process backup makes, incremental runs read
only what changed, and a worker killed mid-run changes nothing in the result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_same_tree, cli_env, kvbackup, make_tree
from kvtools import PASSWORD, SMALL_CHUNKS
from s3servers import S3Server
from stores.countingproxy import CountingProxy

from kvbackup import ChunkerParams, Repository
from kvbackup.core.locks import list_locks
from kvbackup.errors import ClusterError, KvbackupError, UsageError
from kvbackup.ops import distbackup
from kvbackup.ops.distbackup import Piece, assemble_ranges, check_secure_address, plan_shards

# One xdist worker runs every test here (--dist loadgroup): the module's LocalCluster of worker
# processes is then started once, not once per xdist worker on a 2-core machine.
pytestmark = pytest.mark.xdist_group("dask-cluster")

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def s3_env(moto_s3: S3Server) -> Iterator[dict[str, str]]:
    """Credentials and endpoint in this process's environment, which the cluster's worker
    processes inherit (as workers on other machines get them from their own)."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in moto_s3.env().items():
            mp.setenv(key, value)
        yield moto_s3.env()


@pytest.fixture(scope="module")
def client(s3_env: dict[str, str]) -> Iterator[Any]:
    """Two worker processes, started as ``--dask local:2`` starts them."""
    with distbackup.dask_client("local:2") as dask_client:
        yield dask_client


def test_local_workers_keep_the_malloc_defaults_that_one_process_has(client: Any) -> None:
    """Dask sets MALLOC_TRIM_THRESHOLD_ for its workers, which fixes glibc's mmap threshold
    at 128 KiB: each ~1 MiB chunk was then mapped and unmapped, and a worker backed up 2.3x
    slower than one process (docs/distributed.md). kvbackup's local cluster leaves it unset."""
    seen = client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
    assert len(seen) == 2 and set(seen.values()) == {None}


@pytest.fixture
def small_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shards of 256 KiB, so that a small tree makes several shards for several workers."""
    monkeypatch.setattr(distbackup, "MIN_SHARD_BYTES", 256 << 10)


def source_tree(root: Path) -> Path:
    make_tree(root)
    (root / "big.bin").write_bytes(os.urandom(400_000))  # smaller than make_tree's
    (root / "data").mkdir()
    for i in range(10):
        (root / "data" / f"part{i:02d}.bin").write_bytes(os.urandom(100_000))
    # the same content twice: deduplicated within the run
    (root / "data" / "copy.bin").write_bytes((root / "data" / "part03.bin").read_bytes())
    return root


def listing(repo: Repository, snapshot: str) -> list[tuple[Any, ...]]:
    return [
        (e.path, e.kind, e.mode, e.size, e.mtime_ns, e.target, e.chunks)
        for e in repo.entries(snapshot)
    ]


def new_repo(moto_s3: S3Server, segment_size: int | None = 256 << 20) -> tuple[str, Repository]:
    url = f"s3://{moto_s3.new_bucket()}/repo"
    # small chunks (many per file), packs of a few hundred KiB (several per worker)
    chunker = ChunkerParams(**{**SMALL_CHUNKS.as_dict(), "segment_size": segment_size})
    Repository.init(url, password=PASSWORD, chunker=chunker, pack_size=384 << 10).close()
    return url, Repository.open(url, password=PASSWORD)


def test_shards_keep_order_balance_bytes_and_give_every_worker_work() -> None:
    sizes = [100] * 40 + [10 << 30] + [100] * 3
    shards = plan_shards(sizes, workers=4)
    assert [p.pos for shard in shards for p in shard] == list(range(len(sizes)))
    assert all(p.whole for shard in shards for p in shard)
    assert [Piece(40)] in shards  # without segments, a large file is a shard of its own
    many = plan_shards([1 << 20] * 64, workers=2)  # 64 MiB over 2 workers: ~8 MiB shards
    assert len(many) == 8 and {len(s) for s in many} == {8}


def test_a_file_larger_than_a_shard_is_split_into_ranges_of_whole_segments() -> None:
    segment = 64 << 20
    huge = 10 * (1 << 30) + 5  # 10 GiB and a bit: 161 segments, the last of 5 bytes
    shards = plan_shards([100] * 3 + [huge] + [100], workers=4, segment_size=segment)
    ranges = [s[0] for s in shards if s[0].pos == 3]
    assert all(len(s) == 1 for s in shards if s[0].pos == 3)  # one task per range
    assert shards[0] == [Piece(0), Piece(1), Piece(2)] and shards[-1] == [Piece(4)]
    assert all(r.start % segment == 0 for r in ranges)
    assert all(r.length == 256 << 20 for r in ranges[:-1])  # a shard's worth of segments
    assert ranges[-1].length is None and ranges[-1].start < huge  # the last: to the end
    assert [r.start for r in ranges] == list(range(0, huge, 256 << 20))
    # a file of a few segments over 2 workers: ranges of one segment, so both get some
    small = plan_shards([5 * segment + 1], workers=2, segment_size=segment)
    assert [s[0].start for s in small] == [n * segment for n in range(6)]


def test_the_client_refuses_ranges_that_do_not_cover_the_file() -> None:
    a, b, c = Piece(0, 0, 10), Piece(0, 10, 10), Piece(0, 20, None)
    done = {a: (10, 1, [b"a"]), b: (10, 1, [b"b"]), c: (3, 1, [b"c"])}
    assert assemble_ranges([(p, done[p]) for p in (c, a, b)]) == (23, [b"a", b"b", b"c"])
    for pieces in ([a, c], [a, b], [b, c], [a, b, b, c], [a, a, b, c]):
        with pytest.raises(KvbackupError, match="do not cover"):
            assemble_ranges([(p, done[p]) for p in pieces])
    # a range that could not be read, or a short one followed by more: not stored
    assert assemble_ranges([(a, done[a]), (b, None), (c, done[c])]) is None
    assert assemble_ranges([(a, (4, 1, [b"a"])), (b, done[b]), (c, done[c])]) is None


@pytest.mark.parametrize(
    "address",
    [
        "tcp://10.1.2.3:8786",
        "10.1.2.3:8786",
        "tcp://scheduler.example:8786",
        "ws://[2001:db8::1]:1",
    ],
)
def test_plain_network_addresses_beyond_loopback_are_refused(address: str) -> None:
    with pytest.raises(ClusterError, match="unencrypted"):
        check_secure_address(address)


@pytest.mark.parametrize(
    "address", ["tls://10.1.2.3:8786", "tcp://127.0.0.1:8786", "tcp://[::1]:1", "inproc://x/1"]
)
def test_tls_and_loopback_addresses_are_accepted(address: str) -> None:
    check_secure_address(address)


def test_cli_refuses_a_plain_remote_scheduler_before_connecting(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    repo = tmp_path / "repo"
    kvbackup("init", repo)
    started = time.monotonic()
    done = kvbackup("backup", src, "--repo", repo, "--dask", "tcp://192.0.2.1:8786", check=False)
    assert done.returncode == 2, done.stderr
    assert "tls://" in done.stderr and "--dask-trusted-network" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 30  # refused, not a connection attempt timing out


def test_a_missing_dask_names_the_extra(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    kvbackup("init", tmp_path / "repo")
    script = (
        "import sys; sys.modules['distributed'] = None; sys.argv[0] = 'kvbackup'\n"
        "from kvbackup.cli.main import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "backup", str(src), "--repo", str(tmp_path / "repo"),
         "--dask", "local:1"],
        env=cli_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 17, done.stderr
    assert done.stderr.strip().splitlines() == [
        "kvbackup: error: distributed backups need Dask: pip install 'kvbackup[dask]'"
    ]


def test_distributed_snapshot_equals_the_one_process_backup(
    tmp_path: Path, moto_s3: S3Server, client: Any, small_shards: None
) -> None:
    src = source_tree(tmp_path / "src")
    _url, repo = new_repo(moto_s3)
    alone = repo.backup(src, host="alone")
    spread = repo.backup(src, host="spread", executor=client)
    client_puts = repo.core.counts.put  # before the reads below (each writes its read lock)
    info = spread.distributed
    assert info is not None and info["shards"] >= 3
    assert len(info["workers"]) == 2  # both workers had shards
    assert listing(repo, spread.snapshot.id) == listing(repo, alone.snapshot.id)
    # the same entries make the same file list, chunk for chunk
    assert spread.snapshot.filelist == alone.snapshot.filelist
    for name in ("files", "dirs", "symlinks", "bytes", "files_read", "bytes_read"):
        assert getattr(spread.stats, name) == getattr(alone.stats, name), name
    # every worker's counters add up to the totals
    workers = info["workers"].values()
    assert sum(w["bytes_read"] for w in workers) == spread.stats.bytes_read
    assert sum(w["files_read"] for w in workers) == spread.stats.files_read
    assert all(w["requests"]["put"] >= 1 for w in workers)
    # the client's own requests (this repository object's, cumulative) plus the workers'
    assert spread.requests["put"] == client_puts + sum(w["requests"]["put"] for w in workers)
    repo.restore(spread.snapshot.id, tmp_path / "out")
    assert_same_tree(src, tmp_path / "out")
    assert repo.diff(alone.snapshot.id, spread.snapshot.id).changes == []
    assert repo.verify(use_cache=False).ok


@pytest.mark.parametrize(
    ("segment_size", "ranges"), [(1 << 20, 7), (None, 0)], ids=["segments", "old-config"]
)
def test_a_large_file_is_read_in_ranges_by_several_tasks_with_the_one_process_chunks(
    tmp_path: Path,
    moto_s3: S3Server,
    client: Any,
    monkeypatch: pytest.MonkeyPatch,
    segment_size: int | None,
    ranges: int,
) -> None:
    """A file of several segments is split over several tasks: its entry (chunk ids
    included) and the file list are those of a one-process backup, and it restores. In a
    repository whose config has no segment size (made before segments existed) the file
    is one shard, read whole by one worker, as before."""
    monkeypatch.setattr(distbackup, "MIN_SHARD_BYTES", 1 << 20)  # ranges of one segment
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    huge = os.urandom(5 << 20)
    (src / "huge.bin").write_bytes(huge + huge[: 1 << 20] + b"tail")  # 6 MiB and 4 bytes
    (src / "sub" / "a.txt").write_text("small")
    (src / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    _url, repo = new_repo(moto_s3, segment_size)
    spread = repo.backup(src, host="spread", executor=client)  # first: the workers store
    alone = repo.backup(src, host="alone")
    info = spread.distributed
    assert info is not None
    assert info["files_split"] == (1 if ranges else 0) and info["ranges"] == ranges
    assert info["shards"] == (1 + ranges if ranges else 2)  # a range each, or the file whole
    if ranges:
        assert len(info["workers"]) == 2
    assert listing(repo, spread.snapshot.id) == listing(repo, alone.snapshot.id)
    assert spread.snapshot.filelist == alone.snapshot.filelist
    assert spread.stats.files_read == alone.stats.files_read == 3
    assert spread.stats.bytes_read == alone.stats.bytes_read
    assert sum(w["bytes_read"] for w in info["workers"].values()) == spread.stats.bytes_read
    repo.restore(spread.snapshot.id, tmp_path / "out")
    assert_same_tree(src, tmp_path / "out")
    assert repo.verify(use_cache=False).ok


def test_a_distributed_backup_applies_and_records_the_exclude_rules(
    tmp_path: Path, moto_s3: S3Server, client: Any
) -> None:
    src = source_tree(tmp_path / "src")
    os.link(src / "big.bin", src / "big-link.bin")
    _url, repo = new_repo(moto_s3)
    alone = repo.backup(src, host="alone", exclude=["data/part0[0-4].bin"])
    spread = repo.backup(src, host="spread", executor=client, exclude=["data/part0[0-4].bin"])
    names = {os.fsdecode(e.path) for e in repo.entries(spread.snapshot.id)}
    assert "data/part05.bin" in names and "data/part04.bin" not in names
    assert names == {os.fsdecode(e.path) for e in repo.entries(alone.snapshot.id)}
    assert spread.stats.excluded == alone.stats.excluded == 5
    assert spread.snapshot.excludes == {"patterns": ["data/part0[0-4].bin"]}
    # each hard link a file of its own (deduplicated), never a link to one a worker may lose
    link = next(e for e in repo.entries(spread.snapshot.id) if e.path == b"big-link.bin")
    assert link.hardlink is None and link.size == 400_000
    repo.restore(spread.snapshot.id, tmp_path / "out")
    assert (tmp_path / "out" / "big-link.bin").read_bytes() == (src / "big.bin").read_bytes()
    with pytest.raises(UsageError):
        repo.backup(src, executor=client, dry_run=True)


def test_incremental_distributed_run_reads_only_what_changed(
    tmp_path: Path, moto_s3: S3Server, client: Any, small_shards: None
) -> None:
    src = source_tree(tmp_path / "src")
    _url, repo = new_repo(moto_s3)
    first = repo.backup(src, executor=client)
    (src / "data" / "part05.bin").write_bytes(os.urandom(150_000))  # size changed too
    (src / "added.txt").write_text("added after the first run")
    second = repo.backup(src, executor=client)
    assert second.snapshot.parent == first.snapshot.id
    assert second.stats.files_read == 2
    assert second.stats.bytes_read == 150_000 + len("added after the first run")
    assert second.stats.files_unchanged == first.stats.files - 1
    workers = second.distributed["workers"].values()  # type: ignore[index]
    assert sum(w["files_read"] for w in workers) == 2
    repo.restore("latest", tmp_path / "out")
    assert_same_tree(src, tmp_path / "out")


def lake_objects(count: int = 36) -> dict[str, bytes]:
    """A few dozen objects of 20-150 KB (about 3 MB) in a few "folders", one a copy."""
    objects = {
        f"lake/d{i % 4}/obj{i:02d}.bin": os.urandom(20_000 + (i * 3_700) % 130_000)
        for i in range(count)
    }
    objects["lake/d0/copy.bin"] = objects["lake/d1/obj01.bin"]
    return objects


def put_objects(server: S3Server, bucket: str, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        server.client().put_object(Bucket=bucket, Key=key, Body=body)


def test_an_fsspec_source_on_one_s3_server_backed_up_into_the_other(
    tmp_path: Path, moto_s3: S3Server, rclone_s3: S3Server, client: Any, small_shards: None
) -> None:
    """Objects on the rclone server, read by the workers through the fsspec source (options
    sent with the run, through a proxy that counts requests), into a repository on moto: the
    snapshot equals the one-process backup's and restores the objects' bytes; one large
    object is read in ranges (ranged GETs) by several tasks; an incremental run downloads
    only the objects that changed (same size new ETag, or new size)."""
    bucket = rclone_s3.new_bucket()
    objects = lake_objects()
    objects["lake/z/large.bin"] = os.urandom((3 << 20) + 5)  # sorted last
    put_objects(rclone_s3, bucket, objects)
    _url, repo = new_repo(moto_s3, segment_size=1 << 20)
    with CountingProxy(rclone_s3.endpoint) as proxy:
        url = f"s3://{bucket}/lake"
        options = {
            "endpoint_url": proxy.endpoint,
            "key": rclone_s3.access_key,
            "secret": rclone_s3.secret_key,
        }
        alone = repo.backup(url, source_options=options, host="alone")
        proxy.requests.clear()
        spread = repo.backup(url, source_options=options, host="spread", executor=client)
        info = spread.distributed
        assert info is not None and info["shards"] >= 3 and len(info["workers"]) == 2
        assert info["files_split"] == 1 and info["ranges"] == 4
        large_gets = [p for p in proxy.object_gets() if p.endswith("/lake/z/large.bin")]
        assert len(large_gets) >= 4  # each range task fetched its own part
        assert spread.stats.files_read == len(objects)
        assert sum(w["files_read"] for w in info["workers"].values()) == len(objects)
        fetched = {p.split("/", 2)[2] for p in proxy.object_gets()}
        assert fetched == set(objects)  # by the workers: this process only listed
        assert listing(repo, spread.snapshot.id) == listing(repo, alone.snapshot.id)
        assert spread.snapshot.filelist == alone.snapshot.filelist
        assert spread.stats.chunks_deduplicated > 0  # the copy
        repo.restore(spread.snapshot.id, tmp_path / "out")
        restored = {
            "lake/" + p.relative_to(tmp_path / "out").as_posix(): p.read_bytes()
            for p in (tmp_path / "out").rglob("*")
            if p.is_file()
        }
        assert restored == objects

        same_size = "lake/d2/obj06.bin"
        changed = {same_size: os.urandom(len(objects[same_size])), "lake/d3/obj07.bin": b"new"}
        put_objects(rclone_s3, bucket, changed)
        proxy.requests.clear()
        second = repo.backup(url, source_options=options, host="spread", executor=client)
        assert second.snapshot.parent == spread.snapshot.id
        assert second.stats.files_read == 2
        assert second.stats.files_unchanged == len(objects) - 2
        assert {p.split("/", 2)[2] for p in proxy.object_gets()} == set(changed)
    objects.update(changed)
    repo.restore(second.snapshot.id, tmp_path / "again")
    for key, body in objects.items():
        assert (tmp_path / "again" / key.removeprefix("lake/")).read_bytes() == body
    assert repo.verify(use_cache=False).ok


def die_once(marker: str) -> None:
    """Kill this process with SIGKILL, as ``kill -9`` would, if it is the first to get here
    (the one that creates ``marker``); otherwise return."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return
    os.kill(os.getpid(), signal.SIGKILL)


def install_death_after_a_stored_unindexed_pack(marker: str) -> None:
    """In a worker process: before reading a file, once a pack of the current shard is
    stored and not yet named by an index fragment, the first worker to get there (the one
    that creates ``marker``) kills itself with SIGKILL, as ``kill -9`` would."""
    import kvbackup.ops.distbackup as module

    read_file = getattr(module, "_original_read_file", module._read_file)

    def read_or_die(source: Any, entry: Any, chunker: Any, writer: Any, *rest: Any) -> Any:
        writer.drain()  # every chunk so far packed
        if writer.stats.bytes_stored >= writer.pack_size:  # a full pack went to upload
            deadline = time.monotonic() + 30
            while not writer._unindexed and time.monotonic() < deadline:
                time.sleep(0.01)  # until it is stored (its fragment comes at shard end)
            die_once(marker)
        return read_file(source, entry, chunker, writer, *rest)

    module._original_read_file = read_file  # type: ignore[attr-defined]
    module._read_file = read_or_die


def remove_death() -> None:
    import kvbackup.ops.distbackup as module

    module._read_file = getattr(module, "_original_read_file", module._read_file)


def test_a_worker_killed_mid_shard_still_yields_the_complete_identical_snapshot(
    tmp_path: Path, moto_s3: S3Server, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker dies by SIGKILL in the middle of a shard, after storing a pack it had not
    indexed yet: Dask runs the shard again elsewhere, the snapshot is complete and the same
    as a one-process backup's, and the dead worker's pack is an orphan that verify names
    and prune deletes."""
    monkeypatch.setattr(distbackup, "MIN_SHARD_BYTES", 1 << 20)  # ~3 packs per shard
    src = source_tree(tmp_path / "src")
    url, repo = new_repo(moto_s3)
    alone = repo.backup(src, host="alone")
    marker = tmp_path / "killed"
    client.run(install_death_after_a_stored_unindexed_pack, str(marker))
    try:
        spread = repo.backup(src, host="spread", executor=client)
    finally:
        client.run(remove_death)
    assert marker.exists(), "no worker reached the point where it dies"
    assert listing(repo, spread.snapshot.id) == listing(repo, alone.snapshot.id)
    assert spread.snapshot.filelist == alone.snapshot.filelist
    repo.restore(spread.snapshot.id, tmp_path / "out")
    assert_same_tree(src, tmp_path / "out")
    result = repo.verify(use_cache=False)
    assert result.ok and not result.damaged_chunks and not result.affected
    # the pack the killed worker stored but never indexed is an orphan that verify names
    bucket, group = url.split("/")[2], spread.snapshot.group

    def packs() -> set[bytes]:
        listed = moto_s3.client().list_objects_v2(
            Bucket=bucket, Prefix=f"repo/groups/{group}/packs/"
        )
        return {bytes.fromhex(o["Key"].rsplit("/", 1)[1]) for o in listed["Contents"]}

    orphans = packs() - set(repo.core.load_index(group)[0].packs)
    assert orphans
    for pack_id in orphans:
        assert any(pack_id.hex() in w and "orphan" in w for w in result.warnings), result.warnings
    # ... and that prune deletes, leaving the snapshot whole
    assert repo.prune().orphan_packs_deleted == len(orphans)
    assert packs() == set(repo.core.load_index(group)[0].packs)
    repo.restore(spread.snapshot.id, tmp_path / "after-prune")
    assert_same_tree(src, tmp_path / "after-prune")
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker


def install_death_mid_range(marker: str) -> None:
    """In a worker process: the first worker (the one that creates ``marker``) to store the
    20th chunk of a range that is not a file's first kills itself with SIGKILL."""
    import kvbackup.ops.distbackup as module

    read_range = getattr(module, "_original_read_range", module._read_range)

    def read_or_die(source: Any, entry: Any, start: int, length: Any, chunker: Any,
                    writer: Any, *rest: Any) -> Any:  # fmt: skip
        if start > 0:
            add, added = writer.add, [0]

            def add_or_die(kind: Any, data: bytes) -> Any:
                added[0] += 1
                if added[0] == 20:
                    die_once(marker)
                return add(kind, data)

            writer.add = add_or_die
        return read_range(source, entry, start, length, chunker, writer, *rest)

    module._original_read_range = read_range  # type: ignore[attr-defined]
    module._read_range = read_or_die


def remove_death_mid_range() -> None:
    import kvbackup.ops.distbackup as module

    module._read_range = getattr(module, "_original_read_range", module._read_range)


def test_a_worker_killed_mid_range_still_yields_the_whole_file(
    tmp_path: Path, moto_s3: S3Server, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker dies by SIGKILL in the middle of a range of a large file: Dask runs the
    range again elsewhere, and the file's entry is the one-process backup's."""
    monkeypatch.setattr(distbackup, "MIN_SHARD_BYTES", 1 << 20)
    src = tmp_path / "src"
    src.mkdir()
    (src / "huge.bin").write_bytes(os.urandom((4 << 20) + 99))
    _url, repo = new_repo(moto_s3, segment_size=1 << 20)
    marker = tmp_path / "killed"
    client.run(install_death_mid_range, str(marker))
    try:
        spread = repo.backup(src, host="spread", executor=client)
    finally:
        client.run(remove_death_mid_range)
    assert marker.exists(), "no worker reached the point where it dies"
    assert spread.distributed is not None and spread.distributed["ranges"] == 5
    alone = repo.backup(src, host="alone")
    assert listing(repo, spread.snapshot.id) == listing(repo, alone.snapshot.id)
    repo.restore(spread.snapshot.id, tmp_path / "out")
    assert_same_tree(src, tmp_path / "out")
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker


def test_cli_backup_on_a_local_cluster_reports_every_worker(
    tmp_path: Path, moto_s3: S3Server
) -> None:
    env = cli_env(**moto_s3.env())
    url = f"s3://{moto_s3.new_bucket()}/repo"
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(6):
        (src / "sub" / f"f{i}.bin").write_bytes(os.urandom(50_000))
    kvbackup("init", url, env=env)
    out = json.loads(
        kvbackup("backup", src, "--repo", url, "--dask", "local:1", "--json", env=env).stdout
    )
    info = out["distributed"]
    assert info["scheduler"].startswith("tcp://127.0.0.1:")
    for worker in info["workers"].values():
        assert {"bytes_read", "chunks_new", "packs", "requests", "shards"} <= set(worker)
    assert sum(w["bytes_read"] for w in info["workers"].values()) == out["stats"]["bytes_read"]
    assert out["requests"]["put"] > sum(w["requests"]["put"] for w in info["workers"].values())
    kvbackup("restore", "latest", tmp_path / "out", "--repo", url, env=env)
    assert_same_tree(src, tmp_path / "out")


def test_a_client_that_dies_mid_run_leaves_an_incomplete_snapshot_the_next_run_resumes(
    tmp_path: Path, moto_s3: S3Server, client: Any, small_shards: None
) -> None:
    src = source_tree(tmp_path / "src")
    _url, repo = new_repo(moto_s3)

    def die_after_the_first_shard(event: Any) -> None:
        if event.phase == "backup":
            raise KeyboardInterrupt  # the client stops here, as if killed

    with pytest.raises(KeyboardInterrupt):
        repo.backup(src, executor=client, progress=die_after_the_first_shard)
    assert [s.complete for s in repo.snapshots()] == [False]
    assert list_locks(repo.core) == []  # its backup lock went with it
    resumed = repo.backup(src)  # the next run, here a one-process one
    assert any("resumed interrupted snapshot" in m for m in resumed.messages)
    assert resumed.stats.chunks_deduplicated > 0  # what the workers stored is reused
    repo.restore("latest", tmp_path / "out")
    assert_same_tree(src, tmp_path / "out")


def test_a_prune_during_a_distributed_run_leaves_its_group_alone(
    tmp_path: Path, moto_s3: S3Server, client: Any, small_shards: None
) -> None:
    """The client holds the backup lock a one-process backup holds, for the whole run: a
    prune started while workers write skips the group because a backup of its source is
    running, and the lock is gone once the snapshot is committed."""
    src = source_tree(tmp_path / "src")
    url, repo = new_repo(moto_s3)
    pruner = Repository.open(url, password=PASSWORD)
    seen: dict[str, Any] = {}

    def prune_once(event: Any) -> None:
        if event.phase == "backup" and "prune" not in seen:
            seen["locks"] = [(lock.kind, lock.source) for lock in list_locks(repo.core)]
            seen["prune"] = pruner.prune(max_unused=0)

    spread = repo.backup(src, executor=client, progress=prune_once)
    assert seen["locks"] == [("backup", str(src))]
    assert seen["prune"].groups_skipped == {
        spread.snapshot.group: "a backup of its source is running"
    }
    assert list_locks(repo.core) == []  # released once committed
    repo.restore(spread.snapshot.id, tmp_path / "out")
    assert_same_tree(src, tmp_path / "out")
    assert repo.verify(use_cache=False).ok


def test_a_bad_compression_is_refused_before_anything_is_written(
    tmp_path: Path, moto_s3: S3Server, client: Any
) -> None:
    src = make_tree(tmp_path / "src")
    url, repo = new_repo(moto_s3)
    with pytest.raises(UsageError, match="out of range"):
        repo.backup(src, executor=client, compression="zstd:99")
    bucket = url.split("/")[2]
    listed = moto_s3.client().list_objects_v2(Bucket=bucket, Prefix="repo/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert not [k for k in keys if k.startswith(("repo/snapshots/", "repo/groups/", "repo/locks/"))]


def test_a_worker_uses_the_clients_store_deadline_not_its_own_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers on other machines lack the client's $KVBACKUP_STORE_DEADLINE: the run carries
    it, and a worker's store gets it (here the worker's own environment says otherwise)."""
    src = make_tree(tmp_path / "src")
    Repository.init(tmp_path / "repo", password=PASSWORD).close()
    core = Repository.open(tmp_path / "repo", password=PASSWORD).core
    monkeypatch.setenv("KVBACKUP_STORE_DEADLINE", "99")
    spec = distbackup.RunSpec(
        run_id="deadline-test", store_location=str(tmp_path / "repo"), store_options={},
        master_key=core.keys.master, config=core.config.to_json(), group="g",
        chain=core.config.transforms, source_spec=str(src), source_type=None,
        source_options={}, source_identity=str(src), store_deadline=7.0,
    )  # fmt: skip
    run = distbackup._worker_run(spec)
    try:
        assert run.core.raw_store.deadline == 7.0
    finally:
        distbackup.forget_run(spec.run_id)
    core.close()


def test_a_distributed_backup_stores_again_a_chunk_verify_found_damaged(
    tmp_path: Path, moto_s3: S3Server, client: Any, small_shards: None
) -> None:
    """Workers leave out the copies verify recorded as damaged, as a one-process backup
    does: the next run stores the chunk again instead of deduplicating to the bad copy."""
    from kvbackup.format.layout import pack_key

    src = source_tree(tmp_path / "src")
    _url, repo = new_repo(moto_s3)
    first = repo.backup(src, executor=client).snapshot
    index, _ = repo.core.load_index(first.group)
    (entry,) = [e for e in repo.entries(first.id) if e.path == b"data/part04.bin"]
    loc = index.get(entry.chunks[0])
    assert loc is not None
    key = pack_key(first.group, loc.pack_id)
    data = bytearray(repo.core.raw_store.get(key))
    data[loc.offset + loc.length // 2] ^= 0xFF
    repo.core.raw_store.put(key, bytes(data))
    assert not repo.verify(use_cache=False).ok  # and records the damaged copy
    healed = repo.backup(src, executor=client)
    assert healed.stats.files_read >= 1  # the file with the damaged chunk, read again
    repo.restore(healed.snapshot.id, tmp_path / "out")
    assert_same_tree(src, tmp_path / "out")
    assert repo.verify(use_cache=False).ok  # the damaged copy is avoided, a good one stored
