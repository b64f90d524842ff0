"""kvbackup beside restic on the cases the shared benchmark does not cover (issue 14): a tree
of many small files, and many successive backups of a changing tree.

    python3 bench/small_files.py WORKDIR [--files 40000] [--successive 12] [--seed 14]

Makes ``--files`` text files of 0.2-8 KiB in folders of 100, then for each tool (restic if
installed): initial backup, unchanged re-run, re-run after 2% of the files were edited and
200 added, full restore (checked against the tree), and ``--successive`` more backups, each
after such a change. The tools take turns in every step. Prints a Markdown table of wall
seconds, peak RSS (MiB) and repository size (MiB).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

PASSWORD = "benchpass"
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
]


def write_tree(root: Path, count: int, rng: random.Random) -> list[Path]:
    files = []
    for n in range(count):
        path = root / f"d{n // 100:04d}" / f"f{n:06d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text(rng, rng.randint(200, 8192)))
        files.append(path)
    return files


def text(rng: random.Random, size: int) -> str:
    out: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS) if rng.random() < 0.8 else f"{rng.getrandbits(32):x}"
        out.append(word)
        length += len(word) + 1
    return " ".join(out)[:size]


def change(root: Path, files: list[Path], rng: random.Random, step: int) -> None:
    """Edit 2% of the files, add 200."""
    for path in rng.sample(files, len(files) // 50):
        with path.open("a") as f:
            f.write(text(rng, 64))
    extra = root / f"added-{step:03d}"
    extra.mkdir()
    for n in range(200):
        path = extra / f"n{n:03d}.txt"
        path.write_text(text(rng, rng.randint(200, 8192)))
        files.append(path)


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one command."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        sys.exit(f"{' '.join(argv)} exited {proc.returncode}: {err[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def size_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / (1 << 20)


def same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    stack = [cmp]
    while stack:
        c = stack.pop()
        if c.left_only or c.right_only or c.funny_files:
            return False
        if filecmp.cmpfiles(c.left, c.right, c.common_files, shallow=False)[1:] != ([], []):
            return False
        stack.extend(c.subdirs.values())
    return True


class Tool:
    def __init__(self, name: str, work: Path, src: Path):
        self.name, self.repo, self.src = name, work / f"repo-{name}", src
        self.out = work / f"out-{name}"
        self.env = {**os.environ, "KVBACKUP_PASSWORD": PASSWORD, "RESTIC_PASSWORD": PASSWORD,
                    "KVBACKUP_CACHE_DIR": str(work / "cache-kvbackup"),
                    "RESTIC_CACHE_DIR": str(work / "cache-restic")}  # fmt: skip

    def init(self) -> None:
        if self.name == "kvbackup":
            run(["kvbackup", "init", str(self.repo)], self.env)
        else:
            run(["restic", "init", "-q", "-r", str(self.repo)], self.env)

    def backup(self) -> tuple[float, float]:
        if self.name == "kvbackup":
            return run(["kvbackup", "backup", str(self.src), "--repo", str(self.repo)], self.env)
        return run(["restic", "backup", "-q", "-r", str(self.repo), str(self.src)], self.env)

    def restore(self) -> tuple[float, float]:
        shutil.rmtree(self.out, ignore_errors=True)
        if self.name == "kvbackup":
            argv = ["kvbackup", "restore", "latest", str(self.out), "--repo", str(self.repo)]
        else:
            argv = ["restic", "restore", "latest", "-q", "-r", str(self.repo),
                    "--target", str(self.out)]  # fmt: skip
        measured = run(argv, self.env)
        restored = self.out if (self.out / "d0000").exists() else self.out / str(self.src)[1:]
        if not same_tree(self.src, restored):
            sys.exit(f"{self.name}: the restored tree differs")
        shutil.rmtree(self.out)
        return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--files", type=int, default=40_000)
    parser.add_argument("--successive", type=int, default=12)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    work = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    src = work / "src"
    rng = random.Random(args.seed)
    files = write_tree(src, args.files, rng)
    names = ["kvbackup"] + (["restic"] if shutil.which("restic") else [])
    tools = [Tool(name, work, src) for name in names]
    rows: dict[str, dict[str, str]] = {t.name: {} for t in tools}
    step = 0

    def each(label: str, action: str) -> None:
        order = tools if step % 2 == 0 else tools[::-1]
        for tool in order:
            wall, rss = getattr(tool, action)()
            repo = f", {size_mib(tool.repo):.0f}" if action == "backup" else ""
            rows[tool.name][label] = f"{wall:.1f} s, {rss:.0f}{repo}"

    for tool in tools:
        tool.init()
    each("small files, initial", "backup")
    step += 1
    each("small files, unchanged", "backup")
    step += 1
    change(src, files, rng, step)
    each("small files, mutated", "backup")
    each("small files, restore", "restore")
    totals = {t.name: [0.0, 0.0] for t in tools}
    for n in range(args.successive):
        step += 1
        change(src, files, rng, step)
        for tool in tools if n % 2 == 0 else tools[::-1]:
            wall, rss = tool.backup()
            totals[tool.name][0] += wall
            totals[tool.name][1] = max(totals[tool.name][1], rss)
    for tool in tools:
        wall, rss = totals[tool.name]
        rows[tool.name][f"{args.successive} successive backups (total)"] = (
            f"{wall:.1f} s, {rss:.0f}, {size_mib(tool.repo):.0f}"
        )
    print(f"{args.files} files; load {os.getloadavg()[0]:.2f}; seconds, peak RSS MiB, repo MiB")
    print("| case | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label in rows[names[0]]:
        print(f"| {label} | " + " | ".join(rows[n][label] for n in names) + " |")


if __name__ == "__main__":
    main()
