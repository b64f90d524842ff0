"""Throughput of a distributed backup with 1, 2, 4 and 8 Dask workers (docs/distributed.md).

Starts a moto S3 server, makes a data set of incompressible files, and backs it up (a full
backup into a fresh repository each time) with a LocalCluster of N worker processes:
(a) straight to the server, (b) through a proxy that delays every request by 50 ms, the
shape of a real remote bucket. Prints a Markdown table of MB/s for each data set: many
files, then one large file (read in ranges of whole segments by several workers; the
repository's segment size is ``--segment-mib``, so that a small file has several).

    python bench/dask_scaling.py [--files 24] [--file-mib 1] [--large-mib 64]
                                 [--segment-mib 4] [--workers 1,2,4,8]

Needs the test extra (moto[server]) and the dask extra.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kvbackup import ChunkerParams, Repository
from kvbackup.ops import distbackup
from kvbackup.testkit.s3server import moto_server

PROXY = """
import time
from kvbackup.testkit.faultproxy import FaultProxy
with FaultProxy({upstream!r}, slow=1.0, delay={delay}) as proxy:
    print(proxy.endpoint, flush=True)
    time.sleep(1e9)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--file-mib", type=float, default=1.0)
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--min-shard-kib", type=int, default=256)
    parser.add_argument("--large-mib", type=float, default=64.0, help="0: no large file")
    parser.add_argument("--segment-mib", type=int, default=4)
    args = parser.parse_args()
    # a small data set must still make several shards per worker
    distbackup.MIN_SHARD_BYTES = args.min_shard_kib << 10

    work = Path(tempfile.mkdtemp(prefix="kvbackup-bench-dist-"))
    stack = contextlib.ExitStack()
    server = stack.enter_context(moto_server())
    os.environ.update(server.env())
    os.environ.setdefault("KVBACKUP_CACHE_DIR", str(work / "cache"))
    proxy = subprocess.Popen(
        [sys.executable, "-c", PROXY.format(
            upstream=server.endpoint, delay=args.latency)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proxy.stdout is not None
    slow_endpoint = proxy.stdout.readline().strip()
    data_sets: list[tuple[str, Path, int]] = []
    size = int(args.file_mib * (1 << 20))
    src = work / "files"
    src.mkdir()
    for i in range(args.files):
        (src / f"f{i:03d}.bin").write_bytes(os.urandom(size))
    data_sets.append((f"{args.files} files", src, args.files * size))
    if args.large_mib > 0:
        large = work / "large"
        large.mkdir()
        large_size = int(args.large_mib * (1 << 20))
        with open(large / "large.bin", "wb") as fh:
            for left in range(large_size, 0, -(1 << 20)):
                fh.write(os.urandom(min(left, 1 << 20)))
        data_sets.append(("one large file", large, large_size))
    chunker = ChunkerParams(segment_size=args.segment_mib << 20)
    print(f"load: {os.getloadavg()}")

    def run_once(endpoint: str, executor: object, src: Path, total: int) -> tuple[float, int]:
        url = f"s3://{server.new_bucket()}/repo"
        options = {"endpoint_url": endpoint}
        Repository.init(
            url, password="bench", store_options=options, kdf_profile="insecure-fast",
            chunker=chunker,
        ).close()  # fmt: skip
        with Repository.open(url, password="bench", store_options=options) as repo:
            started = time.monotonic()
            result = repo.backup(src, executor=executor)
            ranges = (result.distributed or {}).get("ranges", 0)
            return total / (time.monotonic() - started) / 1e6, ranges

    def row(label: str, executor: object, src: Path, total: int) -> str:
        runs = [run_once(e, executor, src, total) for e in (server.endpoint, slow_endpoint)]
        ranges = f" ({runs[0][1]} ranges)" if runs[0][1] else ""
        return f"| {label}{ranges} | {runs[0][0]:.1f} | {runs[1][0]:.1f} |"

    try:
        tables = {
            name: [
                f"\n{name}: {total / 1e6:.1f} MB",
                "| workers | (a) as is, MB/s | (b) +50 ms per request, MB/s |",
                "|--------:|----------------:|-----------------------------:|",
                row("no Dask (one process)", None, src, total),
            ]
            for name, src, total in data_sets
        }
        for n in [int(w) for w in args.workers.split(",")]:
            with distbackup.dask_client(f"local:{n}") as client:  # as --dask local:N
                # warm up: the workers import kvbackup, boto3 and the plugins once
                client.run(__import__, "kvbackup_s3.store")
                client.run(__import__, "kvbackup.ops.distbackup")
                for name, src, total in data_sets:
                    tables[name].append(row(str(n), client, src, total))
            print(f"{n} workers done", flush=True)
        for lines in tables.values():
            print("\n".join(lines), flush=True)
    finally:
        proxy.kill()
        stack.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
