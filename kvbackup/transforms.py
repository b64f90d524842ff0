"""Transforms and the object envelope every stored object is wrapped in.

An envelope is a small self-describing header (format version, object type, the names of
the transforms applied, in order) followed by the transformed payload. A reader picks its
decoders from the header, never from today's settings. The header and the object's identity
(its key, or a chunk's id) are the associated data of the authenticating transform, so a
changed header, a swapped object or a flipped byte is detected. When no transform in the
chain authenticates, a 16-byte keyed BLAKE3 checksum closes the envelope instead.
See ``docs/format.md``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import blake3

from .errors import CorruptionError, PluginError

MAGIC = b"KV"
FORMAT_VERSION = 1
CHECKSUM_BYTES = 16


class ObjectType:
    """The object type byte of the envelope header."""

    CONFIG = 1
    KEY_SLOT = 2
    SNAPSHOT = 3
    INDEX = 4
    PACK_TRAILER = 5
    DATA = 6
    METADATA = 7
    LOCK = 8

    NAMES = {
        1: "config",
        2: "key slot",
        3: "snapshot",
        4: "index",
        5: "pack trailer",
        6: "data chunk",
        7: "metadata chunk",
        8: "lock",
    }


@runtime_checkable
class Transform(Protocol):
    """A reversible transformation of an object's bytes.

    ``encode`` may return ``None`` to say "not worth applying to this object" (a compressor
    facing incompressible data); the transform is then left out of that object's header.
    A transform with ``authenticates = True`` (an AEAD) must always apply, must run last in
    the chain, and must reject any change to the data or to ``aad`` in ``decode``.
    """

    name: str
    authenticates: bool

    def encode(self, data: bytes, aad: bytes) -> bytes | None: ...

    def decode(self, data: bytes, aad: bytes) -> bytes: ...


class TransformError(Exception):
    """Raised by a transform's ``decode`` when its input is damaged or not authentic."""


def _header(otype: int, names: Sequence[str]) -> bytes:
    out = bytearray(MAGIC)
    out += bytes((FORMAT_VERSION, otype, len(names)))
    for name in names:
        raw = name.encode("ascii")
        out += bytes((len(raw),)) + raw
    return bytes(out)


def parse_header(blob: bytes) -> tuple[int, list[str], int]:
    """Return (object type, transform names, header length) of an envelope."""
    if len(blob) < 5 or blob[:2] != MAGIC:
        raise ValueError("not a kvbackup object (bad magic)")
    if blob[2] != FORMAT_VERSION:
        raise ValueError(f"unsupported object format version {blob[2]}")
    otype, count, pos = blob[3], blob[4], 5
    names = []
    for _ in range(count):
        if pos >= len(blob):
            raise ValueError("truncated header")
        size = blob[pos]
        raw = blob[pos + 1 : pos + 1 + size]
        if len(raw) != size or not raw.isascii():
            raise ValueError("truncated or non-ASCII transform name")
        names.append(raw.decode("ascii"))
        pos += 1 + size
    return otype, names, pos


class Codec:
    """Encodes and decodes envelopes with a repository's transform chain.

    :param chain: the transforms applied on write, in order.
    :param resolve: returns the transform for a name found in a header (read side).
    :param checksum_key: keys the fallback checksum of unauthenticated envelopes.
    :param required_auth: if set, every object (but key slots) must be authenticated by
        this transform; an envelope without it is rejected as tampered.
    """

    def __init__(
        self,
        chain: Sequence[Transform],
        resolve: Callable[[str], Transform],
        checksum_key: bytes,
        required_auth: str | None = None,
    ):
        auth = [t for t in chain if t.authenticates]
        if auth and chain[-1] is not auth[-1]:
            raise PluginError("an authenticating transform must come last in the chain")
        self.chain = list(chain)
        self._plain = [t for t in chain if not t.authenticates]
        self._auth = auth
        self._resolve = resolve
        self._checksum_key = checksum_key
        self.required_auth = required_auth
        self._headers: dict[tuple[int, tuple[str, ...]], bytes] = {}
        self._lock = threading.Lock()

    def _cached_header(self, otype: int, names: tuple[str, ...]) -> bytes:
        key = (otype, names)
        header = self._headers.get(key)
        if header is None:
            header = _header(otype, names)
            with self._lock:
                self._headers[key] = header
        return header

    def encode(self, otype: int, identity: bytes, data: bytes, plain: bool = False) -> bytes:
        """Wrap ``data`` of type ``otype`` known as ``identity`` in an envelope.

        ``plain=True`` applies no transform (key slots, which protect themselves).
        """
        applied: list[str] = []
        if not plain:
            for t in self._plain:
                out = t.encode(data, identity)
                if out is not None:
                    data = out
                    applied.append(t.name)
        auth = [] if plain else self._auth
        names = tuple(applied + [t.name for t in auth])
        header = self._cached_header(otype, names)
        aad = header + identity
        for t in auth:
            out = t.encode(data, aad)
            if out is None:
                raise PluginError(f"authenticating transform {t.name!r} declined to apply")
            data = out
        if auth:
            return header + data
        return b"".join((header, data, self._checksum(aad, data)))

    def decode(self, otype: int, identity: bytes, blob: bytes, what: str) -> bytes:
        """Unwrap an envelope; :class:`CorruptionError` naming ``what`` if it is not
        exactly what was stored under ``identity``."""
        try:
            found, names, pos = parse_header(blob)
        except ValueError as exc:
            raise CorruptionError(f"{what}: {exc}") from None
        if found != otype:
            expected = ObjectType.NAMES.get(otype, str(otype))
            actual = ObjectType.NAMES.get(found, str(found))
            raise CorruptionError(f"{what}: is a {actual} object, expected a {expected}")
        header = blob[:pos]
        aad = header + identity
        transforms = [self._resolve(n) for n in names]
        authenticated = bool(transforms) and transforms[-1].authenticates
        if (
            self.required_auth
            and otype != ObjectType.KEY_SLOT
            and (not authenticated or names[-1] != self.required_auth)
        ):
            raise CorruptionError(f"{what}: not encrypted with the repository key (tampered?)")
        if authenticated:
            data = blob[pos:]
        else:
            data = blob[pos:-CHECKSUM_BYTES]
            if len(blob) < pos + CHECKSUM_BYTES or blob[-CHECKSUM_BYTES:] != self._checksum(
                aad, data
            ):
                raise CorruptionError(f"{what}: checksum mismatch (damaged object)")
        try:
            for t in reversed(transforms):
                data = t.decode(data, aad if t.authenticates else identity)
        except TransformError as exc:
            raise CorruptionError(f"{what}: {exc}") from None
        except Exception as exc:  # a decoder choking on damaged input
            raise CorruptionError(f"{what}: cannot decode ({type(exc).__name__}: {exc})") from None
        return data

    def _checksum(self, aad: bytes, data: bytes) -> bytes:
        h = blake3.blake3(key=self._checksum_key)
        h.update(aad)
        h.update(data)
        return h.digest(CHECKSUM_BYTES)
