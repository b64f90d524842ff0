"""Key slots against denial of service: capped KDF parameters, a bounded total KDF time,
the slot that last opened tried first, and an explicit, recorded KDF profile."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from helpers import PASSWORD, cli_env, kvbackup

from kvbackup import Repository
from kvbackup.core import slotcache
from kvbackup.errors import BadPasswordError, CorruptionError, ExitCode
from kvbackup.format import keyslots as keys
from kvbackup.format.config import CHECKSUM_KEY
from kvbackup.format.envelope import Codec, ObjectType
from kvbackup.format.keyslots import KdfParams, KeyMaterial, unlock, wrap_master_key

CODEC = Codec([], lambda name: None, CHECKSUM_KEY)  # type: ignore[arg-type, return-value]


def slot(master: KeyMaterial, password: str, slot_id: str, profile: str) -> tuple[str, bytes]:
    key = f"keys/{slot_id}"
    body = wrap_master_key(master, password.encode(), slot_id, "", profile)
    return key, CODEC.encode(ObjectType.KEY_SLOT, key.encode(), body, plain=True)


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> list[KdfParams]:
    """The KDF derivations made (each still really made)."""
    made: list[KdfParams] = []
    real = KdfParams.derive

    def counting(self: KdfParams, password: bytes, salt: bytes) -> bytes:
        made.append(self)
        return real(self, password, salt)

    monkeypatch.setattr(KdfParams, "derive", counting)
    return made


def test_the_slot_that_last_opened_is_tried_before_all_others(
    derivations: list[KdfParams],
) -> None:
    master = KeyMaterial.generate()
    slots = [slot(master, f"decoy {i}", f"a{i}", "insecure-fast") for i in range(5)]
    slots.append(slot(master, PASSWORD, "z-mine", "insecure-fast"))
    derivations.clear()
    opened = unlock(CODEC, slots, PASSWORD.encode())
    assert opened.slot_id == "z-mine" and len(derivations) == 6
    derivations.clear()
    again = unlock(CODEC, slots, PASSWORD.encode(), preferred="z-mine")
    assert again.keys.master == master.master and len(derivations) == 1


def test_cheap_slots_are_tried_before_costly_ones(derivations: list[KdfParams]) -> None:
    master = KeyMaterial.generate()
    slots = [
        slot(master, "decoy", "a-costly", "standard"),
        slot(master, PASSWORD, "b-cheap", "insecure-fast"),
    ]
    derivations.clear()
    assert unlock(CODEC, slots, PASSWORD.encode()).slot_id == "b-cheap"
    assert derivations == [keys.KDF_PROFILES["insecure-fast"]]


def test_an_open_stops_after_its_kdf_time_budget(derivations: list[KdfParams]) -> None:
    master = KeyMaterial.generate()
    slots = [slot(master, f"decoy {i}", f"a{i}", "insecure-fast") for i in range(20)]
    slots.append(slot(master, PASSWORD, "z-mine", "insecure-fast"))
    derivations.clear()
    with pytest.raises(CorruptionError, match=r"gave up after .* key slots tried"):
        unlock(CODEC, slots, PASSWORD.encode(), budget=1e-9)
    assert len(derivations) == 1
    # the remembered slot still opens at once
    assert unlock(CODEC, slots, PASSWORD.encode(), "z-mine", budget=1e-9).slot_id == "z-mine"


def test_a_slot_at_the_cap_opens_in_bounded_time_and_memory() -> None:
    """The costliest slot ``init`` writes (the standard profile) is the cap."""
    assert keys.KDF_PROFILES["standard"] == keys.MAX_KDF
    master = KeyMaterial.generate()
    started = time.monotonic()
    unlock(CODEC, [slot(master, PASSWORD, "s", "standard")], PASSWORD.encode())
    assert time.monotonic() - started < 20


def test_repository_open_remembers_the_slot_in_the_private_cache(tmp_path: Path) -> None:
    store: dict[str, bytes] = {}
    repo = Repository.init(store, password=PASSWORD)
    second = repo.add_password("second password")
    reopened = Repository.open(store, password="second password")
    assert reopened.slot_id == second
    assert slotcache.recall(store["config"]) == second
    path = slotcache._path(store["config"])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700


def test_the_old_fast_kdf_variable_no_longer_weakens_new_slots(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(keys, "DEFAULT_KDF_PROFILE", "standard")
    monkeypatch.setenv("KVBACKUP_TEST_FAST_KDF", "1")
    (made,) = Repository.init({}, password=PASSWORD).key_slots()
    assert (made["memory_kib"], made["iterations"], made["profile"]) == (65536, 3, "standard")
    repo = tmp_path / "repo"
    done = kvbackup("init", "--kdf=standard", repo, env=cli_env(KVBACKUP_TEST_FAST_KDF="1"))
    assert "created repository" in done.stdout
    (listed,) = json.loads(kvbackup("key", "list", "--json", "--repo", repo).stdout)
    assert (listed["memory_kib"], listed["profile"]) == (65536, "standard")


def test_init_kdf_insecure_fast_is_explicit_recorded_and_shown(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    kvbackup("init", "--kdf", "insecure-fast", repo)
    (slot_file,) = (repo / "keys").iterdir()
    assert b'"profile": "insecure-fast"' in slot_file.read_bytes()
    listing = kvbackup("key", "list", "--repo", repo).stdout
    assert "(insecure-fast)  INSECURE" in listing


def test_key_list_marks_the_slot_in_use_and_key_remove_refuses_it(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    kvbackup("init", repo)
    other = tmp_path / "other-password"
    other.write_text("another password\n")
    kvbackup("key", "add", "--new-password-file", other, "--repo", repo)
    slots = json.loads(kvbackup("key", "list", "--json", "--repo", repo).stdout)
    (mine,) = [s["id"] for s in slots if s["in_use"]]
    (theirs,) = [s["id"] for s in slots if not s["in_use"]]
    text = kvbackup("key", "list", "--repo", repo).stdout
    assert f"* {mine}" in text and f"  {theirs}" in text
    done = kvbackup("key", "remove", mine, "--repo", repo, check=False)
    assert done.returncode == ExitCode.ERROR and done.stderr.count("\n") == 1
    assert "the one your password opened" in done.stderr
    assert (repo / "keys" / mine).exists()
    kvbackup("key", "remove", mine, "--repo", repo, "--password-file", other)
    assert not (repo / "keys" / mine).exists()
    with pytest.raises(BadPasswordError):
        Repository.open(repo, password=PASSWORD)
