"""Every decoder of the repository format, fed arbitrary and mutated input, raises only
its documented error (:class:`CorruptionError`; a key slot also :class:`BadPasswordError`),
never a crash, a hang or a huge allocation."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvbackup import Repository
from kvbackup.core.repo import RepoCore
from kvbackup.errors import BadPasswordError, CorruptionError, PluginError
from kvbackup.format.config import CHECKSUM_KEY, RepoConfig
from kvbackup.format.envelope import Codec, ObjectType
from kvbackup.format.filelist import decode_entry, encode_entry, read_entries, validate_entry
from kvbackup.format.index import BlobLocation, decode_blob_table, decode_fragment, encode_fragment
from kvbackup.format.keyslots import parse_slot, read_slot, unlock
from kvbackup.format.packs import TRAILER_LEN, PackBuilder, decode_trailer
from kvbackup.format.snapshots import Snapshot
from kvbackup.sources import FILE, SYMLINK, Entry
from kvbackup.transforms import Transform

FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
PASSWORD = "fuzz"


@pytest.fixture(scope="module")
def repos() -> dict[str, RepoCore]:
    """An encrypted and an unencrypted repository (dict stores) with one backup each."""
    out = {}
    for name, encryption in (("encrypted", "default"), ("plain", "none")):
        password = PASSWORD if encryption == "default" else None
        repo = Repository.init({}, password=password, encryption=encryption)
        repo.backup([("a.txt", b"hello " * 100), ("b/c.bin", bytes(range(256)) * 64)])
        out[name] = repo.core
    return out


def mutate(data: bytes, draw: Any) -> bytes:
    """``data`` with bytes flipped, cut, inserted or duplicated."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        pos = draw(st.integers(0, max(0, len(out) - 1)))
        if kind == "flip" and out:
            out[pos] ^= draw(st.integers(1, 255))
        elif kind == "cut" and out:
            del out[pos : pos + draw(st.integers(1, 16))]
        elif kind == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        else:
            del out[pos:]
    return bytes(out)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def envelopes(draw: Any, valid: bytes) -> bytes:
    return mutate(valid, draw) if draw(st.booleans()) else draw(st.binary(max_size=200))


# ------------------------------------------------------------------ envelope


@pytest.mark.parametrize("kind", ["encrypted", "plain"])
@FUZZ
@given(data=st.data())
def test_envelope_decoding_raises_only_corruption(
    repos: dict[str, RepoCore], kind: str, data: Any
) -> None:
    repo = repos[kind]
    otype = data.draw(st.sampled_from(sorted(ObjectType.NAMES)))
    valid = repo.codec.encode(otype, b"identity", b"payload " * 20)
    blob = data.draw(envelopes(valid))
    with contextlib.suppress(CorruptionError):
        repo.codec.decode(otype, b"identity", blob, "fuzzed")


# ------------------------------------------------------------------ key slot


@FUZZ
@given(data=st.data())
def test_key_slot_decoding_raises_only_corruption(repos: dict[str, RepoCore], data: Any) -> None:
    repo = repos["encrypted"]
    (key,) = [k for k in repo.store.list("keys/")]
    valid = repo.store.get(key)
    blob = data.draw(envelopes(valid))
    with contextlib.suppress(CorruptionError):
        read_slot(repo.codec, key, blob)


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(
    ["kdf", "memory_kib", "iterations", "lanes", "salt", "cipher", "nonce", "wrapped", "label",
     "profile"]), JSON))  # fmt: skip
def test_key_slot_fields_are_checked_before_use(fields: dict[str, Any]) -> None:
    body = {
        "kdf": "argon2id",
        "cipher": "chacha20-poly1305",
        "memory_kib": 1024,
        "iterations": 1,
        "lanes": 1,
        "salt": "00" * 16,
        "nonce": "00" * 12,
        "wrapped": "00" * 48,
    }
    body.update(fields)
    try:
        slot = parse_slot(json.dumps(body).encode(), "fuzz")
    except CorruptionError:
        return
    assert 0 < slot["memory_kib"] <= 64 * 1024 and 0 < slot["iterations"] <= 3
    assert 0 < slot["lanes"] <= 4


def test_a_slot_beyond_what_init_writes_is_refused_unopened() -> None:
    body = {"kdf": "argon2id", "cipher": "chacha20-poly1305", "memory_kib": 1 << 22,
            "iterations": 64, "lanes": 64, "salt": "00" * 16, "nonce": "00" * 12,
            "wrapped": "00" * 48}  # fmt: skip
    with pytest.raises(CorruptionError, match=r"memory_kib 4194304 outside 1\.\.65536"):
        parse_slot(json.dumps(body).encode(), "fuzz")


# ------------------------------------------------------------------ snapshot record

SNAPSHOT_FIELDS = [
    "id", "time", "host", "user", "source", "source_kind", "group", "state", "parent",
    "resumes", "full", "end_time", "filelist", "stats", "skipped", "tags",
]  # fmt: skip


@FUZZ
@given(data=st.data())
def test_snapshot_record_decoding_raises_only_corruption(
    repos: dict[str, RepoCore], data: Any
) -> None:
    snap = repos["plain"].snapshots()[0]
    valid = json.dumps(snap.to_json()).encode()
    choice = data.draw(st.integers(0, 2))
    if choice == 0:
        raw = mutate(valid, data.draw)
    elif choice == 1:
        record = snap.to_json()
        record.update(data.draw(st.dictionaries(st.sampled_from(SNAPSHOT_FIELDS), JSON)))
        raw = json.dumps(record).encode()
    else:
        raw = data.draw(st.binary(max_size=300))
    try:
        decoded = Snapshot.decode(raw, "snapshots/fuzzed")
    except CorruptionError:
        return
    decoded.filelist_ids()  # what readers do next must not fail either
    assert all(isinstance(getattr(decoded, f), str) for f in ("id", "host", "user", "group"))
    assert isinstance(decoded.time, datetime)


# ------------------------------------------------------------------ index and trailer


def _blobs(draw: Any, pack_id: bytes) -> list[BlobLocation]:
    n = draw(st.integers(0, 4))
    return [BlobLocation(bytes([i]) * 32, 6, pack_id, i * 100, 100, 200) for i in range(n)]


@FUZZ
@given(data=st.data())
def test_index_fragment_decoding_raises_only_corruption(data: Any) -> None:
    packs = [(bytes([p]) * 16, _blobs(data.draw, bytes([p]) * 16)) for p in range(3)]
    valid = encode_fragment(packs)
    raw = data.draw(envelopes(valid))
    try:
        for pack_id, blobs in decode_fragment(raw, "groups/g/index/fuzzed"):
            assert len(pack_id) == 16 and all(isinstance(b, BlobLocation) for b in blobs)
    except CorruptionError:
        pass


@pytest.mark.parametrize("kind", ["encrypted", "plain"])
@FUZZ
@given(data=st.data())
def test_pack_trailer_decoding_raises_only_corruption(
    repos: dict[str, RepoCore], kind: str, data: Any
) -> None:
    repo = repos[kind]
    builder = PackBuilder(pack_id=b"\x01" * 16)
    builder.add(b"\x02" * 32, ObjectType.DATA, b"x" * 50, 60)
    key = "groups/0123456789abcdef/packs/" + builder.pack_id.hex()
    pack = builder.seal(repo.codec, key)
    (length,) = TRAILER_LEN.unpack(pack[-4:])
    envelope = data.draw(envelopes(pack[-4 - length : -4]))
    with contextlib.suppress(CorruptionError):
        decode_trailer(repo.codec, key, envelope, builder.pack_id)
    table = data.draw(st.binary(max_size=120))
    with contextlib.suppress(CorruptionError):
        decode_blob_table(table, builder.pack_id, key)


@pytest.mark.parametrize("kind", ["encrypted", "plain"])
@FUZZ
@given(data=st.data())
def test_reading_a_fuzzed_pack_table_raises_only_corruption(
    repos: dict[str, RepoCore], kind: str, data: Any
) -> None:
    repo = repos[kind]
    group = repo.snapshots()[0].group
    key = sorted(repo.store.list(f"groups/{group}/packs/"))[0]
    valid = repo.raw_store.get(key)
    repo.raw_store.put(key, data.draw(envelopes(valid)))
    try:
        repo.read_pack_table(group, bytes.fromhex(key.rsplit("/", 1)[1]))
    except CorruptionError:
        pass
    finally:
        repo.raw_store.put(key, valid)


# ------------------------------------------------------------------ file list and config

LINE_FIELDS = ["p", "pb", "t", "m", "mt", "s", "ct", "i", "u", "g", "c", "l", "lb"]


@FUZZ
@given(data=st.data())
def test_file_list_line_decoding_raises_only_corruption(data: Any) -> None:
    entry = Entry(path=b"dir/file", kind=data.draw(st.sampled_from([FILE, SYMLINK])))
    if entry.kind == SYMLINK:
        entry.target = b"../target"
    valid = encode_entry(entry).rstrip(b"\n")
    choice = data.draw(st.integers(0, 2))
    if choice == 0:
        raw = mutate(valid, data.draw)
    elif choice == 1:
        record = json.loads(valid)
        record.update(data.draw(st.dictionaries(st.sampled_from(LINE_FIELDS), JSON)))
        raw = json.dumps(record).encode()
    else:
        raw = data.draw(st.binary(max_size=200))
    try:
        decoded = decode_entry(raw)
    except CorruptionError:
        return
    # what restore does with the fields next must not overflow
    assert 0 <= decoded.mode <= 0o7777 and -(2**63) <= decoded.mtime_ns < 2**63
    assert decoded.kind != SYMLINK or (decoded.target and b"\0" not in decoded.target)
    assert decoded.kind != FILE or decoded.chunks or decoded.size == 0  # no empty stand-in
    assert validate_entry(decoded) is decoded  # the decoder's one-pass checks miss nothing


@pytest.mark.parametrize(
    "fields",
    [{"c": [1]}, {"c": None}, {"c": ["ab"]}, {"mt": True}, {"un": 5}, {"sp": 1}, {"n": 0}],
)
def test_a_malformed_field_is_reported_with_the_entry_it_spoils(fields: dict[str, Any]) -> None:
    record = {"p": "dir/file", "t": "f", "m": 0o644, "mt": 1, **fields}
    with pytest.raises(CorruptionError, match="dir/file: "):
        decode_entry(json.dumps(record).encode())


@FUZZ
@given(chunks=st.lists(st.none() | st.binary(max_size=100), max_size=5))
def test_reading_fuzzed_file_list_chunks_raises_only_corruption(
    chunks: list[bytes | None],
) -> None:
    with contextlib.suppress(CorruptionError):
        list(read_entries(chunks))
    damage: list[CorruptionError] = []
    list(read_entries(chunks, "fuzzed", damage.append))  # reported, never raised


@FUZZ
@given(data=st.data())
def test_config_decoding_raises_only_corruption(repos: dict[str, RepoCore], data: Any) -> None:
    valid = repos["plain"].config.to_json()
    record = json.loads(valid)
    record.update(data.draw(st.dictionaries(st.sampled_from(sorted(record)), JSON)))
    raw = json.dumps(record).encode() if data.draw(st.booleans()) else mutate(valid, data.draw)
    with contextlib.suppress(CorruptionError):
        RepoConfig.from_json(raw)


@FUZZ
@given(data=st.data())
def test_unlocking_with_a_fuzzed_slot_raises_only_password_or_corruption_errors(
    repos: dict[str, RepoCore], data: Any
) -> None:
    def no_transform(name: str) -> Transform:
        raise PluginError(name)

    repo = repos["encrypted"]
    (key,) = [k for k in repo.store.list("keys/")]
    blob = data.draw(envelopes(repo.store.get(key)))
    with pytest.raises((BadPasswordError, CorruptionError)):
        unlock(Codec([], no_transform, CHECKSUM_KEY), [(key, blob)], b"wrong password")
