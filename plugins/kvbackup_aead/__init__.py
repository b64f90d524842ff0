"""Built-in transform plugin: authenticated encryption (ChaCha20-Poly1305, AES-256-GCM)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kvbackup import hookimpl
from kvbackup.transforms import TransformError

if TYPE_CHECKING:
    from kvbackup.hookspecs import RegisterTransform

NONCE_BYTES = 12


@dataclass(frozen=True)
class AeadOptions:
    """The AEAD transforms take no options."""


class AeadTransform:
    """Encrypts each object with a fresh random 96-bit nonce: ``nonce || ciphertext || tag``.

    The header and identity of the object are the associated data, so any change to the
    object, its header, or its place in the repository fails authentication.
    """

    authenticates = True

    def __init__(self, name: str, key: bytes) -> None:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers import aead

        self.name = name
        self._aead: Any = (
            aead.ChaCha20Poly1305(key) if name == "chacha20-poly1305" else aead.AESGCM(key)
        )
        self._invalid_tag = InvalidTag

    def encode(self, data: bytes, aad: bytes) -> bytes | None:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, aad)

    def decode(self, data: bytes, aad: bytes) -> bytes:
        if len(data) < NONCE_BYTES + 16:
            raise TransformError(f"{self.name}: truncated ciphertext")
        try:
            out: bytes = self._aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], aad)
        except self._invalid_tag:
            raise TransformError(
                f"{self.name}: authentication failed (damaged, tampered or misplaced object)"
            ) from None
        return out


def _factory_for(name: str) -> Any:
    def factory(options: AeadOptions, keys: Any) -> AeadTransform:
        return AeadTransform(name, keys.derive(f"transform {name}"))

    return factory


@hookimpl
def kvbackup_register_transforms(register: RegisterTransform) -> None:
    register(
        "chacha20-poly1305",
        _factory_for("chacha20-poly1305"),
        role="encryption",
        default=True,
        options=AeadOptions,
        description="ChaCha20-Poly1305 AEAD, 256-bit key derived from the master key",
    )
    register(
        "aes-256-gcm",
        _factory_for("aes-256-gcm"),
        role="encryption",
        options=AeadOptions,
        description="AES-256-GCM AEAD, 256-bit key derived from the master key",
    )
