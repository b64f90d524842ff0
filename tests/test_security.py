"""What an attacker holding the store can and cannot do: confidentiality, tamper and swap
detection, passwords and key slots. Through the API on a dict store, and through the real
``kvbackup`` command on a local repository."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import select
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import cheap_kdf

from kvbackup import hookimpl
from kvbackup.errors import (
    BadPasswordError,
    CorruptionError,
    ExitCode,
    KvbackupError,
    NotEncryptedError,
)
from kvbackup.format.envelope import ObjectType
from kvbackup.format.index import decode_fragment
from kvbackup.format.layout import pack_id_from_key
from kvbackup.format.packs import TRAILER_LEN, trailer_length
from kvbackup.registry import PluginRegistry
from kvbackup.repository import Repository

PASSWORD = "correct horse battery staple"
MARKER = b"ZQX-SECRET-MARKER-4711"
NAME_MARKER = "zqx-name-marker-0815"
TEXT = b"All work and no play makes Jack a dull boy. " * 30


def make_source(root: Path) -> Path:
    """A small tree: a marker in content and in a file name, text, random data, a
    sub-folder, two equal-sized random files (for blob swaps)."""
    (root / "sub").mkdir(parents=True)
    (root / f"{NAME_MARKER}.txt").write_bytes(b"prefix " + MARKER + b" suffix\n" + TEXT)
    (root / "sub" / "text.txt").write_bytes(TEXT * 20)
    (root / "sub" / "noise.bin").write_bytes(os.urandom(20_000))
    (root / "same-size-1.bin").write_bytes(os.urandom(4096))
    (root / "same-size-2.bin").write_bytes(os.urandom(4096))
    return root


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def flipped(blob: bytes, pos: int) -> bytes:
    out = bytearray(blob)
    out[pos] ^= 0x20
    return bytes(out)


@pytest.fixture
def repo_store(tmp_path: Path) -> tuple[dict[str, bytes], Path]:
    """An encrypted repository (dict store) with two backups of the source."""
    src = make_source(tmp_path / "src")
    store: dict[str, bytes] = {}
    repo = Repository.init(store, password=PASSWORD)
    repo.backup(src)
    (src / "sub" / "later.txt").write_bytes(b"second backup " + TEXT)
    repo.backup(src)
    repo.close()
    return store, src


def exercise(store: dict[str, bytes], out: Path) -> list[str]:
    """Open, list every snapshot, read every record and pack trailer, restore every
    snapshot; return every error reported (raised, per file, or as damage worked around).
    Restored files are left under ``out``."""
    errors: list[str] = []
    try:
        repo = Repository.open(store, password=PASSWORD)
        snaps = repo.snapshots()
        # The .open record of a completed snapshot is superseded: nothing but verify reads
        # it, so read every record here, as verify does.
        for key in [k for k in store if k.startswith("snapshots/")]:
            try:
                repo.core.get_object(key, ObjectType.SNAPSHOT)
            except KvbackupError as exc:
                errors.append(str(exc))
        for key in [k for k in store if "/packs/" in k]:
            pack_id = pack_id_from_key(key)
            assert pack_id is not None
            try:
                repo.core.read_pack_table(key.split("/")[1], pack_id)
            except KvbackupError as exc:
                errors.append(str(exc))
        for snap in snaps:
            try:
                result = repo.restore(snap, out / snap.id)
                errors.extend(f"{path}: {err}" for path, err in result.errors)
            except KvbackupError as exc:
                errors.append(str(exc))
        # damage worked around (an unreadable record or index fragment left out) is
        # reported there, not raised
        errors.extend(repo.damage.messages)
    except KvbackupError as exc:
        errors.append(str(exc))
    return errors


def assert_no_wrong_bytes(out: Path, versions: list[dict[str, bytes]]) -> None:
    """Every restored file has the content of that file in one of the source versions."""
    for snap_dir in out.iterdir() if out.exists() else []:
        for rel, data in tree(snap_dir).items():
            assert any(v.get(rel) == data for v in versions), f"wrong bytes restored: {rel}"


def damage_points(store: dict[str, bytes], key: str) -> dict[str, int]:
    """Byte positions to flip in ``key``: header and middle of every object; for packs, the
    middle of a blob, the trailer, and its length field."""
    size = len(store[key])
    if "/packs/" not in key:
        return {"first": 0, "type": 3, "middle": size // 2, "last": size - 1}
    length = trailer_length(store[key])
    return {
        "blob": 10,
        "trailer": size - TRAILER_LEN.size - length // 2,
        "trailer-length": size - 2,
    }


# ------------------------------------------------------------------ confidentiality


def test_a_marker_in_content_or_names_appears_nowhere_in_the_store(
    repo_store: tuple[dict[str, bytes], Path],
) -> None:
    store, _ = repo_store
    blob = b"".join(store.values()) + "".join(store).encode()
    for needle in (MARKER, NAME_MARKER.encode(), b"noise.bin", b"later.txt", b"sub/"):
        assert needle not in blob


def test_encrypted_packs_show_no_object_headers(repo_store: tuple[dict[str, bytes], Path]) -> None:
    """No object in a pack starts with the plain envelope header, and no cipher name shows.
    (The header's 3 bytes are looked for where each object starts: anywhere in megabytes of
    ciphertext they turn up by chance, about once in 16 MiB.)"""
    store, _ = repo_store
    repo = Repository.open(store, password=PASSWORD)
    packs = 0
    for key, value in store.items():
        if "/packs/" in key:
            pack_id = pack_id_from_key(key)
            assert pack_id is not None
            blobs = repo.core.read_pack_table(key.split("/")[1], pack_id, value)
            body = value[: -TRAILER_LEN.size - trailer_length(value)]
            assert blobs and sum(b.length for b in blobs) == len(body)
            assert all(body[b.offset : b.offset + 3] != b"KV\x01" for b in blobs)
            assert b"chacha" not in body
            packs += 1
    repo.close()
    assert packs


def test_chunk_ids_are_keyed_per_repository(tmp_path: Path) -> None:
    one, two = (Repository.init({}, password=PASSWORD) for _ in range(2))
    assert one.core.hasher(TEXT) != two.core.hasher(TEXT)


def test_text_is_stored_smaller_than_it_is(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"doc{i}.txt").write_bytes(b"%d " % i + TEXT * 50)
    store: dict[str, bytes] = {}
    Repository.init(store, password=PASSWORD).backup(src)
    source_bytes = sum(len(v) for v in tree(src).values())
    assert sum(len(v) for v in store.values()) < source_bytes / 4


# ------------------------------------------------------------------ flip every object


def test_every_object_with_a_flipped_byte_is_detected_and_named(
    repo_store: tuple[dict[str, bytes], Path], tmp_path: Path
) -> None:
    store, src = repo_store
    versions = [tree(src)]
    versions.append({k: v for k, v in versions[0].items() if k != "sub/later.txt"})
    assert exercise(dict(store), tmp_path / "clean") == []
    checked = 0
    for key in sorted(store):
        for where, pos in damage_points(store, key).items():
            damaged = dict(store)
            damaged[key] = flipped(store[key], pos)
            out = tmp_path / f"out-{checked}"
            errors = exercise(damaged, out)
            assert any(key in e for e in errors), f"{key} ({where}) not named: {errors}"
            assert not any("wrong password" in e for e in errors), errors
            assert_no_wrong_bytes(out, versions)
            checked += 1
    assert checked >= 25


def test_a_damaged_blob_spoils_only_its_file_and_names_its_pack(
    repo_store: tuple[dict[str, bytes], Path], tmp_path: Path
) -> None:
    store, _ = repo_store
    repo = Repository.open(store, password=PASSWORD)
    snap = repo.resolve_snapshot("latest")
    index, _ = repo.core.load_index(snap.group)
    entry = next(e for e in repo.core.iter_entries(snap) if e.path == b"sub/noise.bin")
    loc = index.get(entry.chunks[0])
    assert loc is not None
    key = f"groups/{snap.group}/packs/{loc.pack_id.hex()}"
    store[key] = flipped(store[key], loc.offset + loc.length // 2)
    result = Repository.open(store, password=PASSWORD).restore("latest", tmp_path / "out")
    assert [p for p, _ in result.errors] == ["sub/noise.bin"]
    assert key in result.errors[0][1]
    assert not (tmp_path / "out" / "sub" / "noise.bin").exists()
    assert (tmp_path / "out" / "sub" / "text.txt").read_bytes() == TEXT * 20


def test_a_damaged_only_key_slot_is_reported_as_damaged_not_as_a_wrong_password(
    repo_store: tuple[dict[str, bytes], Path],
) -> None:
    store, _ = repo_store
    (slot,) = [k for k in store if k.startswith("keys/")]
    store[slot] = flipped(store[slot], len(store[slot]) // 2)
    with pytest.raises(CorruptionError, match=f"{slot}: checksum mismatch"):
        Repository.open(store, password=PASSWORD)


def test_another_password_still_opens_when_one_key_slot_is_damaged(
    repo_store: tuple[dict[str, bytes], Path],
) -> None:
    store, _ = repo_store
    (first,) = [k for k in store if k.startswith("keys/")]
    Repository.open(store, password=PASSWORD).add_password("second")
    store[first] = flipped(store[first], 40)
    repo = Repository.open(store, password="second")
    damaged = [s for s in repo.key_slots() if "damaged" in s]
    assert [s["id"] for s in damaged] == [first.split("/")[1]]


# ------------------------------------------------------------------ swapped objects


def two_keys(store: dict[str, bytes], match: Callable[[str], bool]) -> tuple[str, str]:
    keys = sorted(k for k in store if match(k))
    assert len(keys) >= 2, keys
    return keys[0], keys[1]


def swapped(store: dict[str, bytes], a: str, b: str) -> dict[str, bytes]:
    out = dict(store)
    out[a], out[b] = store[b], store[a]
    return out


def test_two_snapshot_records_swapped_are_rejected(
    repo_store: tuple[dict[str, bytes], Path],
) -> None:
    store, _ = repo_store
    a, b = two_keys(store, lambda k: k.startswith("snapshots/") and not k.endswith(".open"))
    repo = Repository.open(swapped(store, a, b), password=PASSWORD)
    snaps = repo.snapshots()  # rejected: left out and reported, the rest still listed
    assert [s.state for s in snaps] == ["incomplete", "incomplete"]  # their .open records
    assert all(any(key in m for m in repo.damage.messages) for key in (a, b))


def test_a_snapshot_record_replaced_by_its_open_record_is_rejected(
    repo_store: tuple[dict[str, bytes], Path],
) -> None:
    store, _ = repo_store
    final = next(k for k in sorted(store) if k.startswith("snapshots/") and not k.endswith(".open"))
    store[final] = store[final + ".open"]
    repo = Repository.open(store, password=PASSWORD)
    snaps = {s.id: s.state for s in repo.snapshots()}
    assert snaps[final.split("/")[1]] == "incomplete"
    assert any(final in m for m in repo.damage.messages)


def test_two_index_fragments_swapped_are_rejected(
    repo_store: tuple[dict[str, bytes], Path], tmp_path: Path
) -> None:
    store, src = repo_store
    a, b = two_keys(store, lambda k: "/index/" in k)
    repo = Repository.open(swapped(store, a, b), password=PASSWORD)
    result = repo.restore("latest", tmp_path / "out")  # from the packs' own trailers
    assert not result.errors
    assert tree(tmp_path / "out") == tree(src)
    assert all(any(key in m for m in repo.damage.messages) for key in (a, b))


def test_two_packs_swapped_restore_no_wrong_bytes(
    repo_store: tuple[dict[str, bytes], Path], tmp_path: Path
) -> None:
    store, src = repo_store
    a, b = two_keys(store, lambda k: "/packs/" in k)
    errors = exercise(swapped(store, a, b), tmp_path / "out")
    assert any(a in e for e in errors) and any(b in e for e in errors)
    assert_no_wrong_bytes(tmp_path / "out", [tree(src)])


def test_two_blobs_swapped_inside_a_pack_are_rejected(
    repo_store: tuple[dict[str, bytes], Path], tmp_path: Path
) -> None:
    store, src = repo_store
    repo = Repository.open(store, password=PASSWORD)
    snap = repo.resolve_snapshot("latest")
    index, _ = repo.core.load_index(snap.group)
    entries = {e.path: e for e in repo.core.iter_entries(snap)}
    one, two = (index.get(entries[p].chunks[0]) for p in (b"same-size-1.bin", b"same-size-2.bin"))
    assert one and two and one.pack_id == two.pack_id and one.length == two.length
    key = f"groups/{snap.group}/packs/{one.pack_id.hex()}"
    pack = bytearray(store[key])
    blob_one = pack[one.offset : one.offset + one.length]
    pack[one.offset : one.offset + one.length] = pack[two.offset : two.offset + two.length]
    pack[two.offset : two.offset + two.length] = blob_one
    store[key] = bytes(pack)
    out = tmp_path / "out" / "latest"
    result = Repository.open(store, password=PASSWORD).restore("latest", out)
    assert sorted(p for p, _ in result.errors) == ["same-size-1.bin", "same-size-2.bin"]
    assert_no_wrong_bytes(tmp_path / "out", [tree(src)])


def test_an_index_fragment_stored_under_a_new_name_is_rejected(
    repo_store: tuple[dict[str, bytes], Path],
) -> None:
    store, _ = repo_store
    key = next(k for k in store if "/index/" in k)
    store[key.rsplit("/", 1)[0] + "/" + "0" * 32] = store[key]
    repo = Repository.open(store, password=PASSWORD)
    repo.core.load_index(key.split("/")[1])  # left out, and reported
    assert any("0" * 32 in m for m in repo.damage.messages)


# ------------------------------------------------------------------ downgrades


def test_an_unencrypted_config_next_to_the_key_slots_is_rejected(
    repo_store: tuple[dict[str, bytes], Path],
) -> None:
    store, _ = repo_store
    plain: dict[str, bytes] = {}
    Repository.init(plain, encryption="none")
    store["config"] = plain["config"]
    with pytest.raises(CorruptionError, match="config"):
        Repository.open(store, password=PASSWORD)


def test_a_repository_replaced_by_an_unencrypted_one_is_refused_when_a_password_is_given(
    repo_store: tuple[dict[str, bytes], Path],
) -> None:
    store, _ = repo_store
    plain: dict[str, bytes] = {}
    Repository.init(plain, encryption="none")
    for key in [k for k in store if k.startswith("keys/")]:
        del store[key]
    store["config"] = plain["config"]
    with pytest.raises(NotEncryptedError, match="not encrypted"):
        Repository.open(store, password=PASSWORD)


def test_an_old_snapshot_record_replayed_under_its_own_key_is_accepted(
    repo_store: tuple[dict[str, bytes], Path],
) -> None:
    """Documented limit: objects are authentic under their own key, so deleting and
    re-uploading an old object is not detected (see docs/security.md)."""
    store, _ = repo_store
    key = next(k for k in sorted(store) if k.startswith("snapshots/") and not k.endswith(".open"))
    saved = store.pop(key)
    store[key] = saved
    assert len(Repository.open(store, password=PASSWORD).snapshots()) == 2


# ------------------------------------------------------------------ passwords and KDF


def test_a_wrong_password_is_a_bad_password_error(
    repo_store: tuple[dict[str, bytes], Path],
) -> None:
    store, _ = repo_store
    with pytest.raises(BadPasswordError, match="wrong password"):
        Repository.open(store, password="nope")


def test_new_key_slots_use_strong_argon2id_parameters() -> None:
    (slot,) = Repository.init({}, password=PASSWORD, kdf_profile="standard").key_slots()
    assert (slot["kdf"], slot["memory_kib"], slot["iterations"], slot["lanes"]) == (
        "argon2id",
        64 * 1024,
        3,
        4,
    )


def test_the_kdf_parameters_a_slot_may_ask_for_are_bounded(
    repo_store: tuple[dict[str, bytes], Path],
) -> None:
    store, _ = repo_store
    (key,) = [k for k in store if k.startswith("keys/")]
    header_len = 5
    body = json.loads(store[key][header_len:-16])
    body["iterations"] = 1 << 20
    repo = Repository.open(store, password=PASSWORD)
    store[key] = repo.core.codec.encode(
        ObjectType.KEY_SLOT, key.encode(), json.dumps(body).encode(), plain=True
    )
    with pytest.raises(CorruptionError, match="iterations 1048576 outside"):
        Repository.open(store, password=PASSWORD)


# ------------------------------------------------------------------ a third-party transform


class Xor:
    name = "xor-toy"
    authenticates = False

    def encode(self, data: bytes, aad: bytes) -> bytes | None:
        return bytes(b ^ 0x5A for b in data)

    def decode(self, data: bytes, aad: bytes) -> bytes:
        return bytes(b ^ 0x5A for b in data)


class XorPlugin:
    @hookimpl
    def kvbackup_register_transforms(self, register: Any) -> None:
        register("xor-toy", lambda options, keys: Xor(), description="toy: XOR with 0x5A")


def test_backup_and_restore_round_trip_through_a_third_party_transform(tmp_path: Path) -> None:
    src = make_source(tmp_path / "src")
    registry = PluginRegistry(plugins=[XorPlugin()])
    store: dict[str, bytes] = {}
    repo = Repository.init(store, password=PASSWORD, compression="xor-toy", plugins=registry)
    repo.backup(src)
    assert [t["name"] for t in repo.config.transforms] == ["xor-toy", "chacha20-poly1305"]
    again = Repository.open(store, password=PASSWORD, plugins=registry)
    assert not again.restore("latest", tmp_path / "out").errors
    assert tree(tmp_path / "out") == tree(src)


# ------------------------------------------------------------------ the command line


def cli(*args: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("kvbackup")
    assert exe, "the kvbackup console script is not installed"
    return subprocess.run(
        [exe, *cheap_kdf(args)], env=env, capture_output=True, text=True, timeout=120
    )


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KVBACKUP_")}
    env.update(extra)
    return env


def listing(repo: Path) -> dict[str, str]:
    return {
        str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(repo.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def cli_repo(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """An encrypted local repository made with the CLI, with one backup."""
    src = make_source(tmp_path / "src")
    repo = tmp_path / "repo"
    env = base_env(KVBACKUP_PASSWORD=PASSWORD)
    assert cli("init", repo, env=env).returncode == 0
    assert cli("backup", src, "--repo", repo, "-q", env=env).returncode == 0
    return repo, src, env


def test_cli_store_contains_no_marker(cli_repo: tuple[Path, Path, dict[str, str]]) -> None:
    repo, _, _ = cli_repo
    for path in repo.rglob("*"):
        assert NAME_MARKER not in str(path)
        if path.is_file():
            data = path.read_bytes()
            assert MARKER not in data and NAME_MARKER.encode() not in data


def test_cli_wrong_password_is_one_line_exit_11_and_writes_nothing(
    cli_repo: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    repo, src, _ = cli_repo
    before = listing(repo)
    wrong = base_env(KVBACKUP_PASSWORD="wrong")
    for args in (("backup", src, "--repo", repo), ("snapshots", "--repo", repo)):
        done = cli(*args, env=wrong)
        assert done.returncode == ExitCode.BAD_PASSWORD
        assert done.stderr.count("\n") == 1 and "wrong password" in done.stderr
    assert listing(repo) == before


def test_cli_flipped_byte_in_a_snapshot_record_exits_12_naming_it(
    cli_repo: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    repo, _, env = cli_repo
    record = next(p for p in (repo / "snapshots").iterdir() if not p.name.endswith(".open"))
    record.write_bytes(flipped(record.read_bytes(), 30))
    done = cli("restore", "latest", tmp_path / "out", "--repo", repo, env=env)
    assert done.returncode == ExitCode.CORRUPT
    assert f"snapshots/{record.name}" in done.stderr


def test_cli_flipped_byte_in_a_data_pack_exits_12_and_restores_no_wrong_bytes(
    cli_repo: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    repo, src, env = cli_repo
    for pack in repo.glob("groups/*/packs/*"):
        pack.write_bytes(flipped(pack.read_bytes(), 0))
    done = cli("restore", "latest", tmp_path / "out", "--repo", repo, env=env)
    assert done.returncode == ExitCode.CORRUPT
    assert "packs/" in done.stderr
    original = tree(src)
    for rel, data in tree(tmp_path / "out").items() if (tmp_path / "out").exists() else []:
        assert original[rel] == data


def test_cli_damaged_key_slot_exits_12_naming_the_slot(
    cli_repo: tuple[Path, Path, dict[str, str]],
) -> None:
    repo, _, env = cli_repo
    (slot,) = (repo / "keys").iterdir()
    slot.write_bytes(flipped(slot.read_bytes(), 50))
    done = cli("snapshots", "--repo", repo, env=env)
    assert done.returncode == ExitCode.CORRUPT
    assert f"keys/{slot.name}" in done.stderr and "wrong password" not in done.stderr


def test_cli_encryption_none_is_recorded_and_works(tmp_path: Path) -> None:
    src = make_source(tmp_path / "src")
    repo = tmp_path / "repo"
    env = base_env()
    done = cli("init", repo, "--encryption", "none", "--json", env=env)
    assert json.loads(done.stdout)["encryption"] == "none"
    assert Repository.open(repo).config.encryption is None
    assert not (repo / "keys").exists() or not any((repo / "keys").iterdir())
    assert cli("backup", src, "--repo", repo, "-q", env=env).returncode == 0
    assert cli("restore", "latest", tmp_path / "out", "--repo", repo, env=env).returncode == 0
    assert tree(tmp_path / "out") == tree(src)


def test_cli_refuses_an_unencrypted_repository_when_a_password_is_configured(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    assert cli("init", repo, "--encryption", "none", env=base_env()).returncode == 0
    done = cli("snapshots", "--repo", repo, env=base_env(KVBACKUP_PASSWORD=PASSWORD))
    assert done.returncode == ExitCode.ERROR
    assert "not encrypted" in done.stderr and done.stderr.count("\n") == 1


def test_cli_init_encryption_none_with_a_password_configured_is_refused(tmp_path: Path) -> None:
    done = cli(
        "init", tmp_path / "repo", "--encryption", "none",
        env=base_env(KVBACKUP_PASSWORD=PASSWORD),
    )  # fmt: skip
    assert done.returncode == ExitCode.ERROR and "KVBACKUP_PASSWORD" in done.stderr
    assert not (tmp_path / "repo" / "config").exists()


def test_cli_compression_none_run_keeps_older_snapshots_readable(
    cli_repo: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    repo, src, env = cli_repo
    first = tree(src)
    (src / "new.txt").write_bytes(TEXT * 10)
    args = ("backup", src, "--repo", repo, "--full", "--compression", "none", "-q")
    assert cli(*args, env=env).returncode == 0
    done = cli("snapshots", "--repo", repo, "--json", env=env)
    ids = [s["id"] for s in json.loads(done.stdout)]
    assert len(ids) == 2
    for snap_id, expected in ((ids[0], first), (ids[1], tree(src))):
        out = tmp_path / f"out-{snap_id}"
        assert cli("restore", snap_id, out, "--repo", repo, env=env).returncode == 0
        assert tree(out) == expected


def test_cli_password_sources_file_command_and_env_file(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    assert cli("init", repo, "--password-file", pw, env=base_env()).returncode == 0
    for args, env in (
        (("--password-file", pw), base_env()),
        (("--password-command", f"cat {pw}"), base_env()),
        ((), base_env(KVBACKUP_PASSWORD_FILE=str(pw))),
        ((), base_env(KVBACKUP_PASSWORD_COMMAND=f"cat {pw}")),
        ((), base_env(KVBACKUP_PASSWORD=PASSWORD)),
    ):
        done = cli("snapshots", "--repo", repo, *args, env=env)
        assert done.returncode == 0, (args, done.stderr)
    done = cli("snapshots", "--repo", repo, "--password-command", "echo wrong", env=base_env())
    assert done.returncode == ExitCode.BAD_PASSWORD


def test_cli_without_any_password_source_says_how_to_give_one(
    cli_repo: tuple[Path, Path, dict[str, str]],
) -> None:
    repo, _, _ = cli_repo
    done = cli("snapshots", "--repo", repo, env=base_env())
    assert done.returncode == ExitCode.BAD_PASSWORD and "KVBACKUP_PASSWORD" in done.stderr


def test_cli_key_add_list_remove(
    cli_repo: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    repo, _, env = cli_repo
    second = tmp_path / "second"
    second.write_text("another password\n")
    done = cli(
        "key", "add", "--repo", repo, "--new-password-file", second, "--label", "ops", env=env
    )
    assert done.returncode == 0, done.stderr
    new_id = done.stdout.split()[-1]
    slots = json.loads(cli("key", "list", "--repo", repo, "--json", env=env).stdout)
    assert len(slots) == 2 and {s["label"] for s in slots} == {"", "ops"}
    other = base_env(KVBACKUP_PASSWORD_FILE=str(second))
    assert cli("snapshots", "--repo", repo, env=other).returncode == 0
    old_id = next(s["id"] for s in slots if s["id"] != new_id)
    assert cli("key", "remove", old_id, "--repo", repo, env=other).returncode == 0
    assert cli("snapshots", "--repo", repo, env=env).returncode == ExitCode.BAD_PASSWORD
    done = cli("key", "remove", new_id, "--repo", repo, env=other)
    assert done.returncode == ExitCode.ERROR and "last intact key slot" in done.stderr
    assert cli("snapshots", "--repo", repo, env=other).returncode == 0


def test_cli_a_damaged_key_slot_can_be_listed_and_removed(
    cli_repo: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    repo, _, env = cli_repo
    (first,) = (repo / "keys").iterdir()
    second = tmp_path / "second"
    second.write_text("another password")
    cli("key", "add", "--repo", repo, "--new-password-file", second, env=env)
    first.write_bytes(flipped(first.read_bytes(), 60))
    other = base_env(KVBACKUP_PASSWORD_FILE=str(second))
    done = cli("key", "list", "--repo", repo, env=other)
    assert f"{first.name}  DAMAGED" in done.stdout
    assert cli("key", "remove", first.name, "--repo", repo, env=other).returncode == 0
    assert [p.name for p in (repo / "keys").iterdir()] != [first.name]


def test_cli_init_on_a_terminal_asks_for_the_password_twice(tmp_path: Path) -> None:
    exe = shutil.which("kvbackup")
    assert exe
    repo = tmp_path / "repo"
    pid, fd = pty.fork()
    if pid == 0:  # the child: kvbackup with the pty as its terminal
        os.execve(exe, [exe, "init", "--kdf=insecure-fast", str(repo)], base_env())
    seen = b""
    answers = [b"New repository password", b"Repeat for confirmation"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if answers and answers[0] in seen:
            answers.pop(0)
            os.write(fd, PASSWORD.encode() + b"\n")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert not answers, seen
    assert (
        cli("snapshots", "--repo", repo, env=base_env(KVBACKUP_PASSWORD=PASSWORD)).returncode == 0
    )


def test_decode_fragment_rejects_trailing_bytes() -> None:
    with pytest.raises(CorruptionError):
        list(decode_fragment(b"\0\0\0\0extra", "index"))
