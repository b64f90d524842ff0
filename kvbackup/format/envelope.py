"""The object envelope every stored object is wrapped in, and the codec applying transforms.

An envelope is a small self-describing header (format version, object type, the names of
the transforms applied, in order) followed by the transformed payload. A reader picks its
decoders from the header, never from today's settings. The header and the object's identity
(its key, or a chunk's id) are the associated data of the authenticating transform, so a
changed header, a swapped object or a flipped byte is detected. When no transform in the
chain authenticates, a 16-byte keyed BLAKE3 checksum closes the envelope instead.

In an encrypted repository, chunks stored inside packs are *sealed*: the header is
encrypted together with the payload (the associated data then names only the object type
and the cipher), so a pack shows neither where its blobs begin nor how large each is.
See ``docs/format.md`` and ``docs/security.md``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import blake3

from ..errors import CorruptionError, PluginError
from ..transforms import Transform, TransformError

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
    DAMAGE = 9

    NAMES = {
        1: "config",
        2: "key slot",
        3: "snapshot",
        4: "index",
        5: "pack trailer",
        6: "data chunk",
        7: "metadata chunk",
        8: "lock",
        9: "damage record",
    }


#: Object types stored inside packs; sealed (no clear header) in encrypted repositories.
SEALED_TYPES = frozenset((ObjectType.DATA, ObjectType.METADATA))

_MiB = 1 << 20
#: The largest decoded size of each object type (a repository lowers the data-chunk bound to
#: its chunker's): anything larger is corrupt, and is refused before it is allocated.
DEFAULT_DECODE_LIMITS = {
    ObjectType.CONFIG: 1 * _MiB,
    ObjectType.KEY_SLOT: 64 * 1024,
    ObjectType.SNAPSHOT: 64 * _MiB,
    ObjectType.INDEX: 1024 * _MiB,
    ObjectType.PACK_TRAILER: 64 * _MiB,
    ObjectType.DATA: 64 * _MiB,
    ObjectType.METADATA: 4 * _MiB,
    ObjectType.LOCK: 1 * _MiB,
}
_UNKNOWN_TYPE_LIMIT = 64 * _MiB


def _type_name(otype: int) -> str:
    name = ObjectType.NAMES.get(otype)
    return f"{name} object" if name else f"object of unknown type {otype}"


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
        limits: dict[int, int] | None = None,
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
        self.limits = {**DEFAULT_DECODE_LIMITS, **(limits or {})}
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
        if auth and self._seals(otype):
            # A sealed blob: the whole envelope, header included, is the plaintext, so the
            # pack it sits in shows no blob boundaries, sizes or transform names.
            aad = self._cached_header(otype, (auth[-1].name,)) + identity
            out = auth[-1].encode(header + data, aad)
            if out is None:
                raise PluginError(f"authenticating transform {auth[-1].name!r} declined to apply")
            return out
        aad = header + identity
        for t in auth:
            out = t.encode(data, aad)
            if out is None:
                raise PluginError(f"authenticating transform {t.name!r} declined to apply")
            data = out
        if auth:
            return header + data
        return b"".join((header, data, self._checksum(aad, data)))

    def _seals(self, otype: int) -> bool:
        """Chunks stored inside packs are sealed when the repository is encrypted."""
        return bool(self.required_auth) and otype in SEALED_TYPES

    def decode(self, otype: int, identity: bytes, blob: bytes, what: str) -> bytes:
        """Unwrap an envelope; :class:`CorruptionError` naming ``what`` if it is not
        exactly what was stored under ``identity``.

        Nothing in a header is trusted before it is authenticated (or its checksum
        verified): a damaged transform name is reported as corruption, and only a name in
        an authentic header that no plugin provides is a :class:`PluginError`.
        """
        limit = self.limits.get(otype, _UNKNOWN_TYPE_LIMIT)
        if self._seals(otype):
            return self._decode_sealed(otype, identity, blob, what, limit)
        try:
            found, names, pos = parse_header(blob)
        except ValueError as exc:
            raise CorruptionError(f"{what}: {exc}") from None
        if found != otype:
            raise CorruptionError(
                f"{what}: is a {_type_name(found)}, expected a {_type_name(otype)}"
            )
        header = blob[:pos]
        aad = header + identity
        required = self.required_auth if otype != ObjectType.KEY_SLOT else None
        checksummed = (
            not required
            and len(blob) >= pos + CHECKSUM_BYTES
            and blob[-CHECKSUM_BYTES:] == self._checksum(aad, blob[pos:-CHECKSUM_BYTES])
        )
        if checksummed:
            data = blob[pos:-CHECKSUM_BYTES]
        else:
            if required and (not names or names[-1] != required):
                raise CorruptionError(f"{what}: not encrypted with the repository key (tampered?)")
            auth = self._resolve_untrusted(names[-1], what) if names else None
            if auth is None or not auth.authenticates:
                raise CorruptionError(f"{what}: checksum mismatch (damaged object)")
            data = self._run(auth, blob[pos:], aad, what, None)
            names = names[:-1]
        for name in reversed(names):
            t = self._resolve(name)  # the header is authentic: a missing plugin is real
            if t.authenticates:
                raise CorruptionError(f"{what}: authenticating transform {name!r} not last")
            data = self._run(t, data, identity, what, limit)
        return _within(data, limit, what)

    def _decode_sealed(
        self, otype: int, identity: bytes, blob: bytes, what: str, limit: int
    ) -> bytes:
        assert self.required_auth
        auth = self._resolve(self.required_auth)
        aad = self._cached_header(otype, (auth.name,)) + identity
        inner = self._run(auth, blob, aad, what, None)
        try:
            found, names, pos = parse_header(inner)
        except ValueError as exc:
            raise CorruptionError(f"{what}: {exc}") from None
        if found != otype or not names or names[-1] != auth.name:
            raise CorruptionError(f"{what}: sealed header does not match (tampered?)")
        data = inner[pos:]
        for name in reversed(names[:-1]):
            data = self._run(self._resolve(name), data, identity, what, limit)
        return _within(data, limit, what)

    def _resolve_untrusted(self, name: str, what: str) -> Transform:
        try:
            return self._resolve(name)
        except PluginError as exc:
            raise CorruptionError(
                f"{what}: checksum mismatch (damaged object), or written by a transform that "
                f"is not installed ({exc})"
            ) from None

    @staticmethod
    def _run(t: Transform, data: bytes, aad: bytes, what: str, limit: int | None) -> bytes:
        """``t.decode``, its output bounded by ``limit`` when the transform can bound it."""
        try:
            limited = getattr(t, "decode_limited", None) if limit is not None else None
            if limited is not None:
                return _within(limited(data, aad, limit), limit, what)
            return t.decode(data, aad)
        except TransformError as exc:
            raise CorruptionError(f"{what}: {exc}") from None
        except CorruptionError:
            raise
        except MemoryError:
            raise CorruptionError(f"{what}: cannot decode (out of memory)") from None
        except Exception as exc:  # a decoder choking on damaged input
            raise CorruptionError(f"{what}: cannot decode ({type(exc).__name__}: {exc})") from None

    def _checksum(self, aad: bytes, data: bytes) -> bytes:
        h = blake3.blake3(key=self._checksum_key)
        h.update(aad)
        h.update(data)
        return h.digest(CHECKSUM_BYTES)


def _within(data: bytes, limit: int | None, what: str) -> bytes:
    if limit is not None and len(data) > limit:
        raise CorruptionError(
            f"{what}: decodes to {len(data)} bytes, more than the {limit} allowed"
        )
    return data
