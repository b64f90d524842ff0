"""Prune and the damage records verify leaves (``groups/<gid>/index-damaged/...``): a
damaged copy is never taken for a chunk's live copy, and a record goes once no pack it
names is left (one naming a pack that stays, stays)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import assert_same_tree
from kvtools import chunks_of, flip_byte, init_repo, kvb, kvb_json, open_repo, write_tree

from kvbackup.errors import ExitCode
from kvbackup.format.layout import damage_prefix, pack_key


@pytest.mark.parametrize(
    ("max_unused", "record_goes"), [("0", True), ("100", False)], ids=["repacked", "kept"]
)
def test_prune_removes_a_damage_record_once_its_pack_is_gone_and_keeps_it_before(
    tmp_path: Path, max_unused: str, record_goes: bool
) -> None:
    url, cache = str(tmp_path / "repo"), tmp_path / "c"
    init_repo(url).close()
    src = write_tree(tmp_path / "src", {"a.bin": os.urandom(40_000), "b.txt": b"bravo\n" * 2000})
    snap = kvb_json("backup", src, "-r", url, cache=cache)["snapshot"]
    with open_repo(url) as repo:
        damaged = chunks_of(repo, snap, "a.bin")[0]
        group = repo.resolve_snapshot(snap).group
        flip_byte(repo, group, damaged)
    kvb("verify", "-r", url, cache=cache, expect=ExitCode.CORRUPT)  # records the damage
    kvb("backup", src, "-r", url, cache=cache)  # stores the chunk again, in another pack
    damaged_pack = pack_key(group, damaged.pack_id)
    with open_repo(url) as repo:
        records = sorted(repo.core.store.list(damage_prefix(group)))
        assert len(records) == 1

    result = kvb_json("prune", "-r", url, "--max-unused", max_unused, cache=cache)

    with open_repo(url) as repo:
        pack_left = repo.core.store.exists(damaged_pack)
        left = sorted(repo.core.store.list(damage_prefix(group)))
    assert pack_left is not record_goes
    assert left == ([] if record_goes else records)
    assert result["damage_records_deleted"] == (1 if record_goes else 0)
    report = kvb_json("verify", "--no-cache", "-r", url, cache=cache)
    assert report["ok"], report["problems"]
    # The damaged copy is mentioned (as avoided) exactly while its pack is there.
    assert any(damaged.chunk_id.hex() in w for w in report["warnings"]) is not record_goes
    for n, snapshot in enumerate((snap, "latest")):
        kvb("restore", snapshot, tmp_path / f"out{n}", "-r", url, cache=cache)
        assert_same_tree(src, tmp_path / f"out{n}")
