"""Key material and password key slots.

A repository has one random master key. Every secret the engine and the transforms use is
derived from it with BLAKE3's key-derivation mode, one context string per purpose, so no
key is used for two things. In an encrypted repository the master key is stored only in key
slots (``keys/<slot-id>``), each the master key wrapped by a key derived from a password with
Argon2id. An unencrypted repository keeps its master key in the config in the clear: it
still keys the chunk ids, but protects nothing.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import blake3

from ..errors import BadPasswordError, CorruptionError, KvbackupError
from .envelope import Codec, ObjectType

MASTER_KEY_BYTES = 32
KDF_CONTEXT_PREFIX = "kvbackup v1 "


class KeyMaterial:
    """The repository master key, from which purpose-bound subkeys are derived."""

    def __init__(self, master: bytes):
        if len(master) != MASTER_KEY_BYTES:
            raise ValueError("master key must be 32 bytes")
        self._master = master

    @classmethod
    def generate(cls) -> KeyMaterial:
        return cls(secrets.token_bytes(MASTER_KEY_BYTES))

    def derive(self, purpose: str, length: int = 32) -> bytes:
        """A subkey for ``purpose`` (for example ``"chunk-id"`` or a cipher's name)."""
        hasher = blake3.blake3(derive_key_context=KDF_CONTEXT_PREFIX + purpose)
        hasher.update(self._master)
        return hasher.digest(length)

    @property
    def master(self) -> bytes:
        return self._master


@dataclass(frozen=True)
class KdfParams:
    """Argon2id parameters; the defaults follow OWASP's 2023 advice (64 MiB, t=3, p=4)."""

    memory_kib: int = 64 * 1024
    iterations: int = 3
    lanes: int = 4

    def derive(self, password: bytes, salt: bytes) -> bytes:
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        return Argon2id(
            salt=salt,
            length=32,
            iterations=self.iterations,
            lanes=self.lanes,
            memory_cost=self.memory_kib,
        ).derive(password)

    @property
    def cost(self) -> int:
        """Relative cost of one derivation (memory times passes)."""
        return self.memory_kib * self.iterations


#: The key-derivation settings a key slot can be written with, by name (recorded in the
#: slot). ``insecure-fast`` makes password guessing cheap: for tests and throwaway
#: repositories only, chosen explicitly (``kvbackup init --kdf insecure-fast``).
KDF_PROFILES = {
    "standard": KdfParams(),
    "insecure-fast": KdfParams(memory_kib=1024, iterations=1, lanes=1),
}
#: The profile used when none is given. Only tests change it (with ``monkeypatch``), to keep
#: the suite fast; nothing in kvbackup does, and no environment variable reaches it.
DEFAULT_KDF_PROFILE = "standard"
#: No slot may ask more of the KDF than the costliest profile ``init`` can write: a tampered
#: slot cannot make an open take minutes or gigabytes.
MAX_KDF = KdfParams(
    memory_kib=max(p.memory_kib for p in KDF_PROFILES.values()),
    iterations=max(p.iterations for p in KDF_PROFILES.values()),
    lanes=max(p.lanes for p in KDF_PROFILES.values()),
)
#: An open stops trying slots after this much key derivation (seconds).
KDF_TIME_BUDGET = 30.0


def kdf_profile(name: str | None) -> tuple[str, KdfParams]:
    """The profile called ``name`` (``None``: the default one)."""
    name = name or DEFAULT_KDF_PROFILE
    try:
        return name, KDF_PROFILES[name]
    except KeyError:
        known = ", ".join(KDF_PROFILES)
        raise KvbackupError(f"unknown KDF profile {name!r} (known: {known})") from None


def wrap_master_key(
    keys: KeyMaterial, password: bytes, slot_id: str, label: str, profile: str | None = None
) -> bytes:
    """Return the JSON body of a key slot holding ``keys`` under ``password``."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    name, kdf = kdf_profile(profile)
    salt = secrets.token_bytes(16)
    nonce = secrets.token_bytes(12)
    kek = kdf.derive(password, salt)
    wrapped = ChaCha20Poly1305(kek).encrypt(nonce, keys.master, _slot_aad(slot_id))
    body = {
        "kdf": "argon2id",
        "memory_kib": kdf.memory_kib,
        "iterations": kdf.iterations,
        "lanes": kdf.lanes,
        "profile": name,
        "salt": salt.hex(),
        "cipher": "chacha20-poly1305",
        "nonce": nonce.hex(),
        "wrapped": wrapped.hex(),
        "label": label,
    }
    return json.dumps(body, sort_keys=True).encode()


def slot_kdf(slot: dict[str, Any]) -> KdfParams:
    """The KDF parameters of a parsed slot."""
    return KdfParams(slot["memory_kib"], slot["iterations"], slot["lanes"])


def slot_profile(slot: dict[str, Any]) -> str:
    """The profile a parsed slot was written with (older slots: by their parameters)."""
    if isinstance(slot.get("profile"), str) and slot["profile"] in KDF_PROFILES:
        return str(slot["profile"])
    kdf = slot_kdf(slot)
    return next((n for n, p in KDF_PROFILES.items() if p == kdf), "custom")


def unwrap_master_key(body: bytes, password: bytes, slot_id: str) -> KeyMaterial:
    """Open a key slot; :class:`BadPasswordError` if the password does not fit,
    :class:`CorruptionError` if the slot is malformed."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    slot = parse_slot(body, slot_id)
    kdf = slot_kdf(slot)
    try:
        kek = kdf.derive(password, bytes.fromhex(slot["salt"]))
    except ValueError as exc:  # parameters Argon2 rejects (memory < 8 x lanes, short salt)
        raise CorruptionError(f"keys/{slot_id}: unusable KDF parameters ({exc})") from None
    try:
        master = ChaCha20Poly1305(kek).decrypt(
            bytes.fromhex(slot["nonce"]), bytes.fromhex(slot["wrapped"]), _slot_aad(slot_id)
        )
    except InvalidTag:
        raise BadPasswordError("wrong password") from None
    except ValueError as exc:  # a nonce of the wrong length
        raise CorruptionError(f"keys/{slot_id}: malformed key slot ({exc})") from None
    if len(master) != MASTER_KEY_BYTES:
        raise CorruptionError(f"keys/{slot_id}: wrapped key has the wrong length")
    return KeyMaterial(master)


def parse_slot(body: bytes, slot_id: str) -> dict[str, Any]:
    """The fields of a key slot, checked for shape."""
    try:
        slot = json.loads(body)
        if slot["kdf"] != "argon2id" or slot["cipher"] != "chacha20-poly1305":
            raise ValueError("unsupported kdf or cipher")
        for name in ("memory_kib", "iterations", "lanes"):
            limit = getattr(MAX_KDF, name)
            if type(slot[name]) is not int or not 0 < slot[name] <= limit:
                raise ValueError(f"{name} {slot[name]!r} outside 1..{limit}")
        for name in ("salt", "nonce", "wrapped"):
            bytes.fromhex(slot[name])
        if not isinstance(slot.get("label", ""), str):
            raise ValueError("bad label")
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise CorruptionError(f"keys/{slot_id}: malformed key slot ({exc!s:.200})") from None
    return dict(slot)


def read_slot(codec: Codec, key: str, blob: bytes) -> dict[str, Any]:
    """The fields of the key slot stored under ``key``; :class:`CorruptionError` if the
    slot is damaged (its envelope checksum does not match) or malformed."""
    body = codec.decode(ObjectType.KEY_SLOT, key.encode(), blob, key)
    return parse_slot(body, key.split("/", 1)[1])


@dataclass(frozen=True)
class Unlocked:
    """What opened a repository: the master key, and the slot and profile that held it."""

    keys: KeyMaterial
    slot_id: str
    profile: str


def unlock(
    codec: Codec,
    slots: Iterable[tuple[str, bytes]],
    password: bytes,
    preferred: str | None = None,
    budget: float = KDF_TIME_BUDGET,
) -> Unlocked:
    """The master key, from the first slot that ``password`` opens.

    Slots are tried cheapest first, the ``preferred`` one (the slot that last opened this
    repository here) before all others, and the trying stops once ``budget`` seconds went
    into key derivation: a repository stuffed with slots cannot make an open take hours.
    A damaged slot is skipped, so another slot can still open the repository. If none
    opens and one was damaged, the damage is reported (:class:`CorruptionError` naming the
    slot), not a wrong password: the password may well belong to the damaged slot.
    """
    damaged: list[str] = []
    candidates: list[tuple[str, dict[str, Any], bytes]] = []
    for key, blob in slots:
        slot_id = key.split("/", 1)[1]
        try:
            body = codec.decode(ObjectType.KEY_SLOT, key.encode(), blob, key)
            candidates.append((slot_id, parse_slot(body, slot_id), body))
        except CorruptionError as exc:
            damaged.append(str(exc))
    candidates.sort(key=lambda c: (c[0] != preferred, slot_kdf(c[1]).cost, c[0]))
    spent = 0.0
    for tried, (slot_id, slot, body) in enumerate(candidates):
        if spent >= budget:
            raise CorruptionError(
                f"gave up after {spent:.0f} s of key derivation, {tried} of "
                f"{len(candidates)} key slots tried: the repository has more key slots than "
                "an open will try (tampered?)"
            )
        started = time.monotonic()
        try:
            return Unlocked(unwrap_master_key(body, password, slot_id), slot_id, slot_profile(slot))
        except CorruptionError as exc:
            damaged.append(str(exc))
        except BadPasswordError:
            pass
        finally:
            spent += time.monotonic() - started
    if damaged:
        others = "" if len(damaged) == 1 else f" (and {len(damaged) - 1} more damaged slots)"
        raise CorruptionError(f"{damaged[0]}{others}; no intact key slot opens with this password")
    raise BadPasswordError("wrong password: no key slot of this repository opens with it")


def _slot_aad(slot_id: str) -> bytes:
    return b"kvbackup key slot " + slot_id.encode()
