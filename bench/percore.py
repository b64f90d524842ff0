"""Per-core throughput of the primitives a backup runs, on the benchmark's own data.

usage: python bench/percore.py WORKDIR/data

One thread each, CPU time (not wall time), so a busy machine slows the figures less than it
slows a benchmark: BLAKE3 (keyed, as chunk ids are), FastCDC (the data chunker's bounds),
zstd at the levels worth choosing between, and the two AEADs, on 64 MiB of the tree, of the
big binary and of random bytes, in 1 MiB pieces (the average chunk).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import blake3
import zstandard
from cryptography.hazmat.primitives.ciphers import aead
from pyfastcdc import FastCDC

SAMPLE = 64 << 20
PIECE = 1 << 20


def tree_sample(root: str) -> bytes:
    parts, n = [], 0
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(folder, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as fh:
                parts.append(fh.read())
            n += len(parts[-1])
            if n >= SAMPLE:
                return b"".join(parts)[:SAMPLE]
    return b"".join(parts)


def per_piece(fn: Callable[[bytes], object]) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        for i in range(0, len(data), PIECE):
            fn(data[i : i + PIECE])

    return run


def mb_per_s(fn: Callable[[bytes], object], data: bytes) -> float:
    best = 0.0
    for _ in range(3):
        start = time.process_time()
        fn(data)
        best = max(best, len(data) / max(time.process_time() - start, 1e-9) / 1e6)
    return best


def main(data_dir: str) -> None:
    with open(os.path.join(data_dir, "big.bin"), "rb") as fh:
        samples = {
            "tree": tree_sample(os.path.join(data_dir, "tree")),
            "big.bin": fh.read(SAMPLE),
            "random": os.urandom(SAMPLE),
        }
    key = os.urandom(32)
    chunk_tuned = zstandard.ZstdCompressionParameters.from_level(3, hash_log=15, chain_log=14)
    compressors = {
        "zstd 1": zstandard.ZstdCompressor(level=1),
        "zstd 2": zstandard.ZstdCompressor(level=2),
        "zstd 3 (zstd's tables)": zstandard.ZstdCompressor(level=3),
        "zstd 3 (chunk-sized tables)": zstandard.ZstdCompressor(compression_params=chunk_tuned),
    }
    primitives: dict[str, Callable[[bytes], object]] = {
        "blake3 keyed": per_piece(lambda c: blake3.blake3(c, key=key, max_threads=1).digest()),
        "fastcdc 256K/1M/4M": lambda d: list(
            FastCDC(1 << 20, min_size=256 << 10, max_size=4 << 20).cut_buf(d)
        ),
        "chacha20-poly1305": per_piece(
            lambda c: aead.ChaCha20Poly1305(key).encrypt(bytes(12), c, b"")
        ),
        "aes-256-gcm": per_piece(lambda c: aead.AESGCM(key).encrypt(bytes(12), c, b"")),
        **{name: per_piece(z.compress) for name, z in compressors.items()},
    }
    print(f"{'MB/s per core':28s}" + "".join(f"{name:>10s}" for name in samples))
    for name, fn in primitives.items():
        print(f"{name:28s}" + "".join(f"{mb_per_s(fn, d):10.0f}" for d in samples.values()))
    for name, z in compressors.items():
        ratios = [
            sum(len(z.compress(d[i : i + PIECE])) for i in range(0, len(d), PIECE)) / len(d)
            for d in samples.values()
        ]
        print(f"{name + ' out/in':28s}" + "".join(f"{r:10.3f}" for r in ratios))


if __name__ == "__main__":
    main(sys.argv[1])
