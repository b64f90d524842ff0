#!/usr/bin/env python3
"""What `forget --keep-last 3 --prune` costs on a small history, for comparing two versions
of kvbackup on the same machine and the same repository.

    python3 bench/prune_cost.py WORKDIR [--files 4000] [--rounds 5] \
        [--variant old=/path/to/old/checkout --variant new=.]

History: 10 backups of a tree of FILES small files (backups 1 and 6 --full, so two groups),
2% of the files edited and 20 added between backups; local repository, local cache as a
user has it. Each run works on a fresh copy of the repository and of its cache; the
variants (each a folder holding the `kvbackup` package, put first on PYTHONPATH) take
turns within each round, so a slow spell of the machine hits them alike. Prints each run
and the median per variant, with the requests of the last run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

PASSWORD = "bench password"


def kvbackup(pythonpath: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m kvbackup ARGS`` with ``pythonpath`` first (from a neutral folder:
    ``-m`` puts the working folder before PYTHONPATH)."""
    env = dict(os.environ, KVBACKUP_PASSWORD=PASSWORD)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "kvbackup", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd="/",
    )


def make_history(work: Path, files: int) -> None:
    rng = random.Random(1)
    src = work / "src"
    paths = [src / f"d{i % 40:02d}" / f"e{i % 7}" / f"f{i:05d}.txt" for i in range(files)]
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(rng.randrange(200, 6000)))
    env_cache = str(work / "cache")
    os.environ["KVBACKUP_CACHE_DIR"] = env_cache
    kvbackup("", "init", str(work / "repo"))
    for n in range(1, 11):
        for p in rng.sample(paths, files // 50):
            with p.open("ab") as fh:
                fh.write(b"changed %d\n" % n)
        for k in range(20):
            p = src / "new" / f"n{n:02d}-{k:02d}.bin"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(rng.randbytes(4000))
        full = ["--full"] if n in (1, 6) else []
        kvbackup("", "backup", str(src), "--repo", str(work / "repo"), "-q", *full)


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(work: Path, name: str, pythonpath: str) -> tuple[float, float, float, dict[str, int]]:
    """Wall seconds of the command, of its prune (as it reports), CPU seconds; requests."""
    run = work / f"run-{name}"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(work / "repo", run / "repo")
    shutil.copytree(work / "cache", run / "cache")
    os.environ["KVBACKUP_CACHE_DIR"] = str(run / "cache")
    cpu = cpu_of_children()
    started = time.perf_counter()
    done = kvbackup(
        pythonpath, "forget", "--repo", str(run / "repo"), "--keep-last", "3", "--prune", "--json"
    )
    seconds = time.perf_counter() - started
    cpu = cpu_of_children() - cpu
    out = json.loads(done.stdout)
    shutil.rmtree(run)
    return seconds, out["prune"]["seconds"], cpu, out["requests"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--files", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=PATH")
    args = parser.parse_args()
    variants = {
        name: os.path.abspath(path) if path else ""
        for name, path in (v.split("=", 1) for v in args.variant)
    } or {"current": ""}
    work = args.workdir.resolve()
    if not (work / "repo").exists():
        work.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        make_history(work, args.files)
        print(f"history: 10 backups of {args.files} files in {time.perf_counter() - started:.1f} s")
    times: dict[str, list[float]] = {name: [] for name in variants}
    prunes: dict[str, list[float]] = {name: [] for name in variants}
    cpus: dict[str, list[float]] = {name: [] for name in variants}
    requests: dict[str, dict[str, int]] = {}
    for round_no in range(args.rounds):
        order = list(variants.items())
        if round_no % 2:
            order.reverse()
        for name, path in order:
            seconds, prune, cpu, requests[name] = one_run(work, name, path)
            times[name].append(seconds)
            prunes[name].append(prune)
            cpus[name].append(cpu)
            print(
                f"round {round_no + 1} {name}: {seconds:.2f} s (prune {prune:.2f} s), "
                f"CPU {cpu:.2f} s",
                flush=True,
            )
    for name, values in times.items():
        r = requests[name]
        print(
            f"{name}: median {statistics.median(values):.2f} s "
            f"(min {min(values):.2f}, max {max(values):.2f}, {len(values)} runs), "
            f"prune {statistics.median(prunes[name]):.2f} s, "
            f"CPU {statistics.median(cpus[name]):.2f} s; "
            f"requests GET {r['get']} PUT {r['put']} LIST {r['list']} DELETE {r['delete']}"
        )


if __name__ == "__main__":
    main()
