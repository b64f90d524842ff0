"""The transform contract: what a compression or encryption plugin implements.

How transforms are applied to stored objects (the envelope, its header and checksum) is part
of the repository format: :mod:`kvbackup.format.envelope`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Transform(Protocol):
    """A reversible transformation of an object's bytes.

    ``encode`` may return ``None`` to say "not worth applying to this object" (a compressor
    facing incompressible data); the transform is then left out of that object's header.
    A transform with ``authenticates = True`` (an AEAD) must always apply, must run last in
    the chain, and must reject any change to the data or to ``aad`` in ``decode``.

    A transform whose output can be much larger than its input (a decompressor) should also
    offer ``decode_limited(data, aad, max_size)``, which must refuse, before allocating it,
    output larger than ``max_size`` (raise :class:`TransformError`): the codec passes the
    largest size the object can have, so a crafted object cannot exhaust memory.
    """

    name: str
    authenticates: bool

    def encode(self, data: bytes, aad: bytes) -> bytes | None: ...

    def decode(self, data: bytes, aad: bytes) -> bytes: ...


class TransformError(Exception):
    """Raised by a transform's ``decode`` when its input is damaged or not authentic."""
