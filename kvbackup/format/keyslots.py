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
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import blake3

from ..errors import BadPasswordError, CorruptionError
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


# Tests may lower the KDF cost through this variable; it is never read for real repositories
# unless set, and the parameters used are recorded in each slot.
_FAST_KDF_ENV = "KVBACKUP_TEST_FAST_KDF"


def default_kdf() -> KdfParams:
    if os.environ.get(_FAST_KDF_ENV):
        return KdfParams(memory_kib=1024, iterations=1, lanes=1)
    return KdfParams()


def wrap_master_key(keys: KeyMaterial, password: bytes, slot_id: str, label: str) -> bytes:
    """Return the JSON body of a key slot holding ``keys`` under ``password``."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    kdf = default_kdf()
    salt = secrets.token_bytes(16)
    nonce = secrets.token_bytes(12)
    kek = kdf.derive(password, salt)
    wrapped = ChaCha20Poly1305(kek).encrypt(nonce, keys.master, _slot_aad(slot_id))
    body = {
        "kdf": "argon2id",
        "memory_kib": kdf.memory_kib,
        "iterations": kdf.iterations,
        "lanes": kdf.lanes,
        "salt": salt.hex(),
        "cipher": "chacha20-poly1305",
        "nonce": nonce.hex(),
        "wrapped": wrapped.hex(),
        "label": label,
    }
    return json.dumps(body, sort_keys=True).encode()


def unwrap_master_key(body: bytes, password: bytes, slot_id: str) -> KeyMaterial:
    """Open a key slot; :class:`BadPasswordError` if the password does not fit,
    :class:`CorruptionError` if the slot is malformed."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    slot = parse_slot(body, slot_id)
    kdf = KdfParams(slot["memory_kib"], slot["iterations"], slot["lanes"])
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
        for name, limit in _KDF_LIMITS.items():
            if not isinstance(slot[name], int) or not 0 < slot[name] <= limit:
                raise ValueError(f"bad {name}")
        for name in ("salt", "nonce", "wrapped"):
            bytes.fromhex(slot[name])
        if not isinstance(slot.get("label", ""), str):
            raise ValueError("bad label")
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptionError(f"keys/{slot_id}: malformed key slot ({exc})") from None
    return dict(slot)


# Upper bounds on what a slot may ask of the KDF, so that a tampered slot cannot make
# opening the repository take hours or all memory: 4 GiB, 64 passes, 64 lanes.
_KDF_LIMITS = {"memory_kib": 1 << 22, "iterations": 64, "lanes": 64}


def read_slot(codec: Codec, key: str, blob: bytes) -> dict[str, Any]:
    """The fields of the key slot stored under ``key``; :class:`CorruptionError` if the
    slot is damaged (its envelope checksum does not match) or malformed."""
    body = codec.decode(ObjectType.KEY_SLOT, key.encode(), blob, key)
    return parse_slot(body, key.split("/", 1)[1])


def unlock(codec: Codec, slots: Iterable[tuple[str, bytes]], password: bytes) -> KeyMaterial:
    """The master key, from the first slot that ``password`` opens.

    A damaged slot is skipped, so another slot can still open the repository. If none
    opens and one was damaged, the damage is reported (:class:`CorruptionError` naming the
    slot), not a wrong password: the password may well belong to the damaged slot.
    """
    damaged: list[str] = []
    for key, blob in slots:
        try:
            body = codec.decode(ObjectType.KEY_SLOT, key.encode(), blob, key)
            return unwrap_master_key(body, password, key.split("/", 1)[1])
        except CorruptionError as exc:
            damaged.append(str(exc))
        except BadPasswordError:
            continue
    if damaged:
        others = "" if len(damaged) == 1 else f" (and {len(damaged) - 1} more damaged slots)"
        raise CorruptionError(f"{damaged[0]}{others}; no intact key slot opens with this password")
    raise BadPasswordError("wrong password: no key slot of this repository opens with it")


def _slot_aad(slot_id: str) -> bytes:
    return b"kvbackup key slot " + slot_id.encode()
