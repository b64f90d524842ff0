"""A single byte flipped in each object type in turn: ``verify --no-cache`` detects it
every time, and restore never writes wrong bytes."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import Trials, trial_guard
from kvtools import SMALL_CHUNKS, SMALL_PACKS
from oracle import differences, make_tree, manifest
from places import PASSWORD

from kvbackup import Repository
from kvbackup.cli.main import cli
from kvbackup.errors import KvbackupError
from kvbackup.format.envelope import ObjectType
from kvbackup.format.index import decode_fragment
from kvbackup.format.layout import pack_id_from_key, snapshot_key
from kvbackup.format.packs import TRAILER_LEN, trailer_length

OBJECT_TYPES = [
    "config",
    "key slot",
    "snapshot record",
    "incomplete snapshot record",
    "index fragment",
    "data chunk",
    "file-list chunk",
    "pack trailer",
    "pack trailer length",
]


def _region(repo: Repository, root: Path, what: str, rng: random.Random) -> tuple[Path, int, int]:
    """A file of the repository and the byte range in it that holds an object of type
    ``what`` (the seeded choice among several)."""
    snap = repo.resolve_snapshot("latest")
    if what == "config":
        return root / "config", 0, (root / "config").stat().st_size
    if what == "key slot":
        key = rng.choice(sorted(repo.core.raw_store.list("keys/")))
        return root / key, 0, (root / key).stat().st_size
    if what in ("snapshot record", "incomplete snapshot record"):
        key = snapshot_key(snap.id, final=what == "snapshot record")
        return root / key, 0, (root / key).stat().st_size
    if what == "index fragment":
        key = rng.choice(sorted(repo.core.raw_store.list(f"groups/{snap.group}/index/")))
        return root / key, 0, (root / key).stat().st_size
    packs = sorted(repo.core.raw_store.list(f"groups/{snap.group}/packs/"))
    if what in ("data chunk", "file-list chunk"):
        otype = ObjectType.DATA if what == "data chunk" else ObjectType.METADATA
        index, _ = repo.core.load_index(snap.group)
        locs = sorted(
            (loc for loc in index.locations() if loc.otype == otype),
            key=lambda loc: (loc.pack_id, loc.offset),
        )
        loc = rng.choice(locs)
        path = root / f"groups/{snap.group}/packs/{loc.pack_id.hex()}"
        return path, loc.offset, loc.offset + loc.length
    key = rng.choice(packs)
    assert pack_id_from_key(key)
    data = (root / key).read_bytes()
    if what == "pack trailer length":
        return root / key, len(data) - TRAILER_LEN.size, len(data)
    end = len(data) - TRAILER_LEN.size
    return root / key, end - trailer_length(data), end


def _template(base: Path, rng: random.Random, encryption: str) -> tuple[Path, Path, Any]:
    root, src = base / "template", base / "src"
    make_tree(src, rng, files=12, max_size=100_000)
    password = PASSWORD if encryption == "default" else None
    repo = Repository.init(
        str(root), password=password, encryption=encryption,
        chunker=SMALL_CHUNKS, pack_size=SMALL_PACKS,
    )  # fmt: skip
    with repo:
        repo.backup(str(src))
    return root, src, manifest(src)


def _verify_exit_code(root: Path, cache: Path, encrypted: bool) -> tuple[int, str]:
    env = {"KVBACKUP_CACHE_DIR": str(cache)}
    if encrypted:
        env["KVBACKUP_PASSWORD"] = PASSWORD
    done = CliRunner().invoke(cli, ["verify", "--no-cache", "-r", str(root)], env=env)
    assert "Traceback" not in done.output
    return done.exit_code, done.output


@pytest.mark.parametrize("encryption", ["default", "none"])
def test_a_flipped_byte_in_any_object_is_detected_and_never_restored(
    trials: Trials, encryption: str
) -> None:
    for trial in trials:
        with trial_guard(trials, trial):
            template, _src, expected = _template(trial.workdir, trial.rng, encryption)
            password = PASSWORD if encryption == "default" else None
            for what in OBJECT_TYPES:
                if what == "key slot" and encryption == "none":
                    continue  # an unencrypted repository has no key slots
                root = trial.workdir / what.replace(" ", "-")
                shutil.copytree(template, root)
                with Repository.open(str(root), password=password) as repo:
                    path, start, end = _region(repo, root, what, trial.rng)
                data = bytearray(path.read_bytes())
                at = trial.rng.randrange(start, end)
                data[at] ^= trial.rng.randrange(1, 256)
                path.write_bytes(bytes(data))
                code, output = _verify_exit_code(root, trial.workdir / "cache", bool(password))
                assert code != 0, f"{what}: byte {at} of {path.name} flipped, verify said\n{output}"
                target = trial.workdir / f"out-{what.replace(' ', '-')}"
                try:
                    with Repository.open(str(root), password=password) as repo:
                        result = repo.restore("latest", target)
                    unrestored = {p.encode() for p, _ in result.errors}
                    if b"(file list)" in unrestored:  # the entries it held are not restored
                        unrestored = set(expected)
                except KvbackupError:
                    unrestored = set(expected)  # refused outright: nothing may be wrong
                if target.exists():
                    assert differences(expected, target, unrestored) == [], what


def test_every_object_type_is_flipped() -> None:
    stored = {"config", "key slot", "snapshot record", "index fragment", "data chunk"}
    assert stored <= set(OBJECT_TYPES)
    assert {"file-list chunk", "pack trailer", "incomplete snapshot record"} <= set(OBJECT_TYPES)
    assert decode_fragment  # fragments are what the index fragment case damages
