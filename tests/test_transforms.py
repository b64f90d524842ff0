"""The object envelope and the transform plugins: round-trips, tampering, header-driven reads."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kvbackup_aead import AeadTransform
from kvbackup_zstd import ZstdTransform

from kvbackup import hookimpl
from kvbackup.errors import CorruptionError, PluginError
from kvbackup.format.config import CHECKSUM_KEY
from kvbackup.format.envelope import MAGIC, Codec, ObjectType, parse_header
from kvbackup.format.keyslots import KeyMaterial
from kvbackup.registry import PluginRegistry
from kvbackup.repository import Repository
from kvbackup.transforms import Transform

KEYS = KeyMaterial(bytes(range(32)))
TEXT = b"the quick brown fox jumps over the lazy dog\n" * 200
IDENTITY = b"snapshots/20240101T000000Z"
CHUNK_ID = bytes(range(32))


class Reverse:
    """A third-party toy transform: reverses the bytes."""

    name = "reverse"
    authenticates = False

    def encode(self, data: bytes, aad: bytes) -> bytes | None:
        return data[::-1]

    def decode(self, data: bytes, aad: bytes) -> bytes:
        return data[::-1]


def make(name: str) -> Transform:
    if name == "zstd":
        return ZstdTransform()
    if name == "reverse":
        return Reverse()
    return AeadTransform(name, KEYS.derive(f"transform {name}"))


def resolver() -> Callable[[str], Transform]:
    known = {n: make(n) for n in ("zstd", "reverse", "chacha20-poly1305", "aes-256-gcm")}

    def resolve(name: str) -> Transform:
        if name not in known:
            raise PluginError(f"unknown transform {name!r}")
        return known[name]

    return resolve


def codec(*names: str) -> Codec:
    chain = [make(n) for n in names]
    cipher = next((t.name for t in chain if t.authenticates), None)
    return Codec(chain, resolver(), CHECKSUM_KEY, required_auth=cipher)


CHAINS = [
    (),
    ("zstd",),
    ("chacha20-poly1305",),
    ("aes-256-gcm",),
    ("zstd", "chacha20-poly1305"),
    ("zstd", "aes-256-gcm"),
    ("reverse",),
    ("reverse", "chacha20-poly1305"),
    ("zstd", "reverse", "aes-256-gcm"),
]
CHAIN_IDS = ["+".join(c) or "none" for c in CHAINS]
#: A stand-alone object (clear header) and a chunk inside a pack (sealed when encrypted).
KINDS = [(ObjectType.SNAPSHOT, IDENTITY), (ObjectType.DATA, CHUNK_ID)]
KIND_IDS = ["snapshot", "chunk"]


@pytest.mark.parametrize("names", CHAINS, ids=CHAIN_IDS)
@pytest.mark.parametrize(("otype", "identity"), KINDS, ids=KIND_IDS)
@pytest.mark.parametrize(
    "data", [b"", b"x", TEXT, os.urandom(5000)], ids=["empty", "1", "text", "random"]
)
def test_every_chain_round_trips(
    names: tuple[str, ...], otype: int, identity: bytes, data: bytes
) -> None:
    c = codec(*names)
    assert c.decode(otype, identity, c.encode(otype, identity, data), "obj") == data


@pytest.mark.parametrize("names", CHAINS, ids=CHAIN_IDS)
@pytest.mark.parametrize(("otype", "identity"), KINDS, ids=KIND_IDS)
def test_every_byte_flipped_is_detected(
    names: tuple[str, ...], otype: int, identity: bytes
) -> None:
    c = codec(*names)
    blob = c.encode(otype, identity, TEXT[:300])
    for i in range(len(blob)):
        damaged = bytearray(blob)
        damaged[i] ^= 0x01
        with pytest.raises(CorruptionError, match=r"^obj: "):
            c.decode(otype, identity, bytes(damaged), "obj")


@pytest.mark.parametrize("names", CHAINS, ids=CHAIN_IDS)
@pytest.mark.parametrize(("otype", "identity"), KINDS, ids=KIND_IDS)
def test_truncated_or_extended_envelope_is_detected(
    names: tuple[str, ...], otype: int, identity: bytes
) -> None:
    c = codec(*names)
    blob = c.encode(otype, identity, TEXT[:300])
    for bad in (blob[:-1], blob[1:], blob + b"\0", blob[:4], b""):
        with pytest.raises(CorruptionError):
            c.decode(otype, identity, bad, "obj")


@pytest.mark.parametrize("names", CHAINS, ids=CHAIN_IDS)
def test_an_object_read_under_another_identity_is_rejected(names: tuple[str, ...]) -> None:
    c = codec(*names)
    blob = c.encode(ObjectType.SNAPSHOT, b"snapshots/A", b"record A")
    with pytest.raises(CorruptionError):
        c.decode(ObjectType.SNAPSHOT, b"snapshots/B", blob, "snapshots/B")


@pytest.mark.parametrize("names", CHAINS, ids=CHAIN_IDS)
def test_an_object_read_as_another_type_is_rejected(names: tuple[str, ...]) -> None:
    c = codec(*names)
    blob = c.encode(ObjectType.DATA, CHUNK_ID, b"file content")
    with pytest.raises(CorruptionError):
        c.decode(ObjectType.METADATA, CHUNK_ID, blob, "chunk")


def test_a_header_naming_another_type_is_reported_as_such() -> None:
    c = codec("zstd", "chacha20-poly1305")
    blob = c.encode(ObjectType.INDEX, b"x", b"an index")
    with pytest.raises(CorruptionError, match="is a index object, expected a snapshot object"):
        c.decode(ObjectType.SNAPSHOT, b"x", blob, "x")


def test_the_header_names_the_transforms_applied_in_order() -> None:
    blob = codec("zstd", "reverse", "aes-256-gcm").encode(ObjectType.INDEX, b"k", TEXT)
    otype, names, _ = parse_header(blob)
    assert blob.startswith(MAGIC)
    assert (otype, names) == (ObjectType.INDEX, ["zstd", "reverse", "aes-256-gcm"])


@pytest.mark.parametrize("cipher", ["chacha20-poly1305", "aes-256-gcm"])
def test_a_sealed_chunk_shows_no_header_and_no_transform_names(cipher: str) -> None:
    blob = codec("zstd", cipher).encode(ObjectType.DATA, CHUNK_ID, TEXT)
    assert MAGIC + b"\x01" not in blob
    assert b"zstd" not in blob and cipher.encode() not in blob


@pytest.mark.parametrize("cipher", ["chacha20-poly1305", "aes-256-gcm"])
def test_the_same_object_encrypts_differently_each_time(cipher: str) -> None:
    c = codec(cipher)
    first, second = (c.encode(ObjectType.INDEX, b"k", b"same") for _ in range(2))
    assert first != second
    assert c.decode(ObjectType.INDEX, b"k", first, "k") == c.decode(
        ObjectType.INDEX, b"k", second, "k"
    )


def test_zstd_skips_incompressible_data() -> None:
    c = codec("zstd")
    noise = os.urandom(20000)
    blob = c.encode(ObjectType.SNAPSHOT, b"k", noise)
    assert parse_header(blob)[1] == []
    assert c.decode(ObjectType.SNAPSHOT, b"k", blob, "k") == noise


def test_zstd_compresses_text_and_says_so_in_the_header() -> None:
    blob = codec("zstd").encode(ObjectType.SNAPSHOT, b"k", TEXT)
    assert parse_header(blob)[1] == ["zstd"]
    assert len(blob) < len(TEXT) / 10


def test_the_reader_picks_decoders_from_the_header_not_from_its_own_chain() -> None:
    zstd_written = codec("zstd").encode(ObjectType.SNAPSHOT, b"k", TEXT)
    plain_written = codec().encode(ObjectType.SNAPSHOT, b"k", TEXT)
    assert codec().decode(ObjectType.SNAPSHOT, b"k", zstd_written, "k") == TEXT
    assert codec("zstd").decode(ObjectType.SNAPSHOT, b"k", plain_written, "k") == TEXT


def test_a_sealed_chunk_without_compression_reads_with_a_compressing_codec() -> None:
    blob = codec("aes-256-gcm").encode(ObjectType.DATA, CHUNK_ID, TEXT)
    assert codec("zstd", "aes-256-gcm").decode(ObjectType.DATA, CHUNK_ID, blob, "c") == TEXT


def test_an_encrypted_repository_rejects_an_unencrypted_object() -> None:
    forged = codec("zstd").encode(ObjectType.SNAPSHOT, IDENTITY, b'{"forged": true}')
    with pytest.raises(CorruptionError, match="not encrypted with the repository key"):
        codec("zstd", "chacha20-poly1305").decode(ObjectType.SNAPSHOT, IDENTITY, forged, "s")


def test_an_object_encrypted_under_another_key_is_rejected() -> None:
    other = Codec(
        [AeadTransform("chacha20-poly1305", KeyMaterial.generate().derive("transform x"))],
        resolver(),
        CHECKSUM_KEY,
        "chacha20-poly1305",
    )
    blob = other.encode(ObjectType.SNAPSHOT, IDENTITY, b"theirs")
    with pytest.raises(CorruptionError, match="authentication failed"):
        codec("chacha20-poly1305").decode(ObjectType.SNAPSHOT, IDENTITY, blob, "s")


def test_an_authentic_header_naming_a_missing_transform_is_a_plugin_error() -> None:
    writer = Codec([Reverse()], resolver(), CHECKSUM_KEY)
    blob = writer.encode(ObjectType.SNAPSHOT, b"k", b"data")

    def without_reverse(name: str) -> Transform:
        raise PluginError(f"unknown transform {name!r}: it is not available")

    reader = Codec([], without_reverse, CHECKSUM_KEY)
    with pytest.raises(PluginError, match="reverse"):
        reader.decode(ObjectType.SNAPSHOT, b"k", blob, "k")


def test_a_damaged_transform_name_is_corruption_not_a_missing_plugin() -> None:
    c = codec("zstd")
    blob = bytearray(c.encode(ObjectType.SNAPSHOT, b"k", TEXT))
    blob[blob.index(b"zstd")] = ord("Z")
    with pytest.raises(CorruptionError, match="checksum mismatch"):
        c.decode(ObjectType.SNAPSHOT, b"k", bytes(blob), "k")


def test_an_authenticating_transform_must_come_last() -> None:
    with pytest.raises(PluginError, match="must come last"):
        Codec([make("chacha20-poly1305"), make("zstd")], resolver(), CHECKSUM_KEY)


def test_subkeys_differ_by_purpose_and_by_repository() -> None:
    assert KEYS.derive("chunk-id") != KEYS.derive("transform chacha20-poly1305")
    assert KEYS.derive("transform chacha20-poly1305") != KEYS.derive("transform aes-256-gcm")
    assert KEYS.derive("chunk-id") != KeyMaterial.generate().derive("chunk-id")


# ------------------------------------------------------------ through a repository


class ReversePlugin:
    @hookimpl
    def kvbackup_register_transforms(self, register: Any) -> None:
        register("reverse", lambda options, keys: Reverse(), description="toy: reversed bytes")


def test_a_repository_written_with_zstd_stays_readable_after_compression_none(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(TEXT)
    store: dict[str, bytes] = {}
    repo = Repository.init(store, password="pw")
    first = repo.backup(src).snapshot
    (src / "b.txt").write_bytes(TEXT * 2)
    second = repo.backup(src, compression="none", full=True).snapshot
    again = Repository.open(store, password="pw")
    for snap, out in ((first, "one"), (second, "two")):
        assert not again.restore(snap.id, tmp_path / out).errors
    assert (tmp_path / "one" / "a.txt").read_bytes() == TEXT
    assert (tmp_path / "two" / "b.txt").read_bytes() == TEXT * 2


def test_a_repository_written_uncompressed_stays_readable_after_zstd(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(TEXT)
    store: dict[str, bytes] = {}
    repo = Repository.init(store, password="pw", compression="none")
    first = repo.backup(src).snapshot
    (src / "b.txt").write_bytes(TEXT * 3)
    repo.backup(src, compression="zstd:19")
    again = Repository.open(store, password="pw")
    assert not again.restore(first.id, tmp_path / "one").errors
    assert not again.restore("latest", tmp_path / "two").errors
    assert (tmp_path / "two" / "b.txt").read_bytes() == TEXT * 3


def test_a_third_party_transform_chosen_at_init_is_recorded_and_applied() -> None:
    registry = PluginRegistry(plugins=[ReversePlugin()])
    store: dict[str, bytes] = {}
    repo = Repository.init(store, encryption="none", compression="reverse", plugins=registry)
    repo.backup([("note.txt", b"abcdef-marker")])
    assert [t["name"] for t in repo.config.transforms] == ["reverse"]
    packs = [v for k, v in store.items() if "/packs/" in k]
    assert any(b"abcdef-marker"[::-1] in v for v in packs)
    assert not any(b"abcdef-marker" in v for v in packs)


def test_opening_without_the_plugin_of_a_transform_in_use_names_it() -> None:
    registry = PluginRegistry(plugins=[ReversePlugin()])
    store: dict[str, bytes] = {}
    Repository.init(store, encryption="none", compression="reverse", plugins=registry)
    with pytest.raises(PluginError, match=r"'reverse'.*not available"):
        Repository.open(store)
