"""The file list of a snapshot: one JSON line per entry, cut into metadata chunks.

Lines are written in the source's order. The byte stream is cut with FastCDC, so the file
list of an unchanged tree dedups against its parent's, and an incremental backup reads only
its parent's list, never all earlier ones. See ``docs/format.md`` for the fields.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any, Generic, TypeVar

from ..display import display_name
from ..errors import CorruptionError
from ..sources import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SYMLINK, Entry
from .chunker import ID_BYTES, METADATA_CHUNKS, Chunker

_KIND_CODES = {FILE: "f", DIR: "d", SYMLINK: "l", FIFO: "p", CHARDEV: "c", BLOCKDEV: "b"}
_CODE_KINDS = {v: k for k, v in _KIND_CODES.items()}
_FLUSH_AT = 1 << 20
R = TypeVar("R")


def _get_bytes(record: dict[str, Any], key: str) -> bytes | None:
    if key in record:
        value = record[key]
        if not isinstance(value, str):
            raise ValueError(f"field {key!r} is not a string")
        return value.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError
    if key + "b" in record:
        value = record[key + "b"]
        if not isinstance(value, str):
            raise ValueError(f"field {key + 'b'!r} is not a string")
        return base64.b64decode(value, validate=True)
    return None


def encode_entry(entry: Entry) -> bytes:
    """One file-list line for ``entry`` (newline included)."""
    if entry.kind == FILE:
        ids = '","'.join([c.hex() for c in entry.chunks])
        ids = f'"{ids}"' if ids else ""
        return f"{_file_head(entry)}{ids}{_file_tail(entry)}\n".encode()
    middle = ""
    if entry.kind == SYMLINK and entry.target is not None:
        middle = "," + _bytes_field("l", entry.target)
    elif entry.kind in (CHARDEV, BLOCKDEV):
        middle = f',"rd":{entry.rdev}'
    return f"{_common_head(entry)}{middle}{_xattrs_field(entry)}}}\n".encode()


# The line is formatted directly, to exactly the bytes ``json.dumps(record, separators=(",",
# ":"))`` wrote for it in earlier versions (so file lists still dedup against theirs): the
# keys in this order, strings escaped as ``json.dumps`` escapes them, chunk ids as lowercase
# hex. Formatting it is about twice as fast as building a dict and dumping it, and a file's
# line can be split around its chunk ids (:func:`match_file_line`).
_quote = json.encoder.encode_basestring_ascii


def _bytes_field(key: str, raw: bytes) -> str:
    try:
        return f'"{key}":{_quote(raw.decode("utf-8"))}'
    except UnicodeDecodeError:
        return f'"{key}b":"{base64.b64encode(raw).decode("ascii")}"'


def path_field(entry: Entry) -> bytes:
    """How the line of ``entry`` begins: its path field, up to the comma after it."""
    return f"{{{_bytes_field('p', entry.path)},".encode()


def _common_head(entry: Entry) -> str:
    """The fields every kind has: path, kind, mode, mtime, owners."""
    return (
        f'{{{_bytes_field("p", entry.path)},"t":"{_KIND_CODES[entry.kind]}","m":{entry.mode}'
        f',"mt":{entry.mtime_ns}{_owners(entry.uid, entry.gid, entry.user, entry.group)}'
    )


@lru_cache(maxsize=1024)
def _owners(uid: int, gid: int, user: str, group: str) -> str:
    out = f',"u":{uid},"g":{gid}' if uid >= 0 else ""
    if user:
        out += f',"un":{_quote(user)}'
    if group:
        out += f',"gn":{_quote(group)}'
    return out


def _file_head(entry: Entry) -> str:
    """A file's line up to its first chunk id."""
    return f'{_common_head(entry)},"s":{entry.size},"ct":{entry.ctime_ns},"i":{entry.inode},"c":['


def _file_tail(entry: Entry) -> str:
    """A file's line after its last chunk id (without the newline)."""
    out = "]"
    if entry.nlink > 1:
        out += f',"n":{entry.nlink}'
    if entry.hardlink is not None:
        out += "," + _bytes_field("h", entry.hardlink)
    if entry.sparse:
        out += ',"sp":true'
    return out + _xattrs_field(entry) + "}"


def _xattrs_field(entry: Entry) -> str:
    if not entry.xattrs:
        return ""
    pairs = ",".join(
        f'["{base64.b64encode(k).decode()}","{base64.b64encode(v).decode()}"]'
        for k, v in sorted(entry.xattrs.items())
    )
    return f',"x":[{pairs}]'


_CHUNK_IDS = re.compile(rb'"[0-9a-f]{%d}"(?:,"[0-9a-f]{%d}")*' % (2 * ID_BYTES, 2 * ID_BYTES))


def match_file_line(entry: Entry, line: bytes) -> list[bytes] | None:
    """The chunk ids of ``line`` if it is, byte for byte, the line :func:`encode_entry`
    writes for the file ``entry`` with those chunk ids (and no hard link); else ``None``.

    A line that matches is valid by construction (its every field is one of ``entry``,
    which came from the file system), so an unchanged file's line is carried over from the
    parent without being parsed or checked field by field. A line that does not match
    (another encoding, a change, damage) is for :func:`decode_entry` to read.
    """
    head = _file_head(entry).encode()
    tail = _file_tail(entry).encode()
    end = len(line) - len(tail)
    if end < len(head) or not line.startswith(head) or not line.endswith(tail):
        return None
    ids = line[len(head) : end]
    if not ids:
        return [] if entry.size == 0 else None  # a file of bytes lists chunks
    if not _CHUNK_IDS.fullmatch(ids):
        return None
    if len(ids) == 2 * ID_BYTES + 2:  # most files: one chunk
        return [binascii.unhexlify(ids[1:-1])]
    raw = binascii.unhexlify(ids.replace(b'","', b"")[1:-1])
    return [raw[i : i + ID_BYTES] for i in range(0, len(raw), ID_BYTES)]


def decode_entry(line: bytes) -> Entry:
    """The entry of one file-list line; :class:`CorruptionError` if malformed."""
    try:
        return _entry(json.loads(line), line)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise CorruptionError(f"malformed entry ({_reason(exc)})") from None


def decode_entries(
    lines: list[bytes], on_bad: Callable[[int, CorruptionError], None] | None = None
) -> list[Entry]:
    """The entries of several lines, parsed in one call (much faster than line by line).

    A malformed line raises :class:`CorruptionError`; with ``on_bad`` it is reported
    instead (with its position in ``lines``) and left out.
    """
    try:
        records = json.loads(b"[" + b",".join(lines) + b"]")
        if len(records) == len(lines):
            return [_entry(record, line) for record, line in zip(records, lines, strict=True)]
    except (ValueError, KeyError, TypeError, RecursionError):
        pass
    out = []
    for n, line in enumerate(lines):  # find and name the bad lines
        try:
            out.append(decode_entry(line))
        except CorruptionError as exc:
            if on_bad is None:
                raise
            on_bad(n, exc)
    return out


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, KeyError):
        return f"no field {exc}"
    return str(exc)


#: Bounds on the fields of an entry; a line outside them is corrupt, whatever wrote it.
MAX_PATH_BYTES = 64 * 1024
MAX_TARGET_BYTES = 64 * 1024
MAX_LINE_BYTES = 128 * 1024 * 1024  # ~2 million chunk ids: a file of terabytes
MAX_NAME_CHARS = 256  # owner and group names
MAX_XATTR_BYTES = 16 * 1024 * 1024  # all of one entry's extended attributes together
_INT64 = (-(1 << 63), (1 << 63) - 1)
_FIELD_RANGES = {
    "mode": (0, 0o7777),
    "size": (0, _INT64[1]),
    "mtime_ns": _INT64,
    "ctime_ns": _INT64,
    "inode": (0, (1 << 64) - 1),
    "uid": (-1, (1 << 32) - 2),
    "gid": (-1, (1 << 32) - 2),
    "nlink": (1, (1 << 32) - 1),
    "rdev": (0, (1 << 64) - 1),
}


def validate_entry(entry: Entry) -> Entry:
    """Return ``entry`` if every field is within what a real file system can hold; else
    raise ``ValueError`` saying which field is not.

    The one check of an entry's fields, shared by every reader (restore, verify, ls, diff),
    so that no consumer meets an overflowing time, an impossible mode or a NUL in a link
    target. Whether a path is safe to create under a restore target is the restorer's check
    (:func:`kvbackup.sources.check_relative_path`).
    """
    for name, (low, high) in _FIELD_RANGES.items():
        value = getattr(entry, name)
        if type(value) is not int or not low <= value <= high:
            raise ValueError(f"{name} out of range")
    return _validate_other_fields(entry)


def _validate_other_fields(entry: Entry) -> Entry:
    """:func:`validate_entry` but for the integer fields (which :func:`_entry` checks as it
    reads them)."""
    if entry.kind not in _KIND_CODES:
        raise ValueError(f"unknown type {entry.kind!r}")
    if len(entry.path) > MAX_PATH_BYTES:
        raise ValueError(f"path of {len(entry.path)} bytes")
    if entry.kind == SYMLINK:
        target = entry.target
        if not target or b"\0" in target or len(target) > MAX_TARGET_BYTES:
            raise ValueError("symlink target empty, too long or holding a NUL byte")
    elif entry.target is not None:
        raise ValueError(f"a link target on a {entry.kind}")
    if entry.chunks and entry.kind != FILE:
        raise ValueError(f"chunks on a {entry.kind}")
    if entry.kind == FILE and entry.size and not entry.chunks and entry.hardlink is None:
        # restored, it would be an empty file standing in for one of ``size`` bytes
        raise ValueError(f"a file of {entry.size} bytes that lists no chunks")
    if entry.hardlink is not None:
        link = entry.hardlink
        if entry.kind != FILE or not link or b"\0" in link or len(link) > MAX_PATH_BYTES:
            raise ValueError("hard link empty, too long, holding a NUL byte or not on a file")
    return entry


def _int(record: dict[str, Any], key: str, default: int | None = None) -> int:
    value = record.get(key, default)
    if type(value) is not int:  # not a bool, not a string of digits
        raise ValueError(f"field {key!r} is not an integer")
    return value


#: The integer fields of a line: key, default (``None``: required), the entry's field and
#: its range. Read in this order: the order of :class:`Entry`'s fields after ``kind``.
_INT_FIELDS = tuple(
    (key, default, name, *_FIELD_RANGES[name])
    for key, default, name in (
        ("m", None, "mode"),
        ("s", 0, "size"),
        ("mt", None, "mtime_ns"),
        ("ct", 0, "ctime_ns"),
        ("i", 0, "inode"),
        ("u", -1, "uid"),
        ("g", -1, "gid"),
    )
)


def _entry(record: dict[str, Any], line: bytes) -> Entry:
    """The entry of one parsed line, checked (the hot path of every reader: one pass over
    the fields, no second look at the integers)."""
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    path = _get_bytes(record, "p")
    if path is None:
        raise ValueError("no path")
    ints = []
    try:
        for key, default, name, low, high in _INT_FIELDS:
            value = record.get(key, default)
            if type(value) is not int:  # not a bool, not a string of digits
                raise ValueError(f"field {key!r} is not an integer")
            if not low <= value <= high:
                raise ValueError(f"{name} out of range")
            ints.append(value)
        ids = record.get("c", [])
        try:
            if type(ids) is not list:
                raise TypeError
            chunks = list(map(bytes.fromhex, ids))
        except TypeError:
            raise ValueError("field 'c' is not a list of chunk ids") from None
        for chunk in chunks:
            if len(chunk) != ID_BYTES:
                raise ValueError("bad chunk id")
        mode, size, mtime_ns, ctime_ns, inode, uid, gid = ints
        entry = Entry(
            path,
            _CODE_KINDS[record["t"]],
            mode,
            size,
            mtime_ns,
            ctime_ns,
            inode,
            uid,
            gid,
            target=_get_bytes(record, "l") if "l" in record or "lb" in record else None,
            chunks=chunks,
            line=line,
            user=_str(record, "un") if "un" in record else "",
            group=_str(record, "gn") if "gn" in record else "",
            xattrs=_xattrs(record["x"]) if "x" in record else None,
            hardlink=_get_bytes(record, "h") if "h" in record or "hb" in record else None,
            nlink=_int(record, "n") if "n" in record else 1,
            sparse=_bool(record, "sp") if "sp" in record else False,
            rdev=_int(record, "rd") if "rd" in record else 0,
        )
        for name in ("nlink", "rdev"):
            low, high = _FIELD_RANGES[name]
            if not low <= getattr(entry, name) <= high:
                raise ValueError(f"{name} out of range")
        return _validate_other_fields(entry)
    except ValueError as exc:
        if len(path) > MAX_PATH_BYTES:
            raise
        raise ValueError(f"{display_name(path)}: {exc}") from None  # name the entry


def _str(record: dict[str, Any], key: str) -> str:
    value = record.get(key, "")
    if not isinstance(value, str) or len(value) > MAX_NAME_CHARS or "\0" in value:
        raise ValueError(f"field {key!r} is not a name")
    return value


def _bool(record: dict[str, Any], key: str) -> bool:
    value = record.get(key, False)
    if type(value) is not bool:
        raise ValueError(f"field {key!r} is not true or false")
    return value


def _xattrs(pairs: Any) -> dict[bytes, bytes] | None:
    if not pairs:
        return None
    if not isinstance(pairs, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs
    ):
        raise ValueError("field 'x' is not a list of [name, value] pairs")
    xattrs = {
        base64.b64decode(k, validate=True): base64.b64decode(v, validate=True) for k, v in pairs
    }
    if sum(len(k) + len(v) for k, v in xattrs.items()) > MAX_XATTR_BYTES:
        raise ValueError("extended attributes too large")
    if any(not k or b"\0" in k for k in xattrs):
        raise ValueError("an extended attribute name empty or holding a NUL byte")
    return xattrs


class FileListWriter(Generic[R]):
    """Streams entries into metadata chunks; ``emit(chunk)`` stores one and returns what
    names it (its id, or a reference to it)."""

    def __init__(self, emit: Callable[[bytes], R]):
        self._emit = emit
        self._chunker = Chunker(METADATA_CHUNKS)
        self._buf = bytearray()
        self.chunk_ids: list[R] = []

    def add(self, entry: Entry, line: bytes | None = None) -> None:
        """Append ``entry``; ``line`` is its file-list line if known already (without the
        newline), which must be exactly what :func:`encode_entry` would write or an older
        encoding of the same entry."""
        if line is None:
            self._buf += encode_entry(entry)
        else:
            self._buf += line
            self._buf += b"\n"
        if len(self._buf) >= _FLUSH_AT:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        cuts = self._chunker.cut_points(self._buf)
        if not final:
            cuts = cuts[:-1]  # the last cut may be forced by the end of the buffer
        start = 0
        for end in cuts:
            self.chunk_ids.append(self._emit(bytes(self._buf[start:end])))
            start = end
        del self._buf[:start]

    def close(self) -> list[R]:
        """Flush what is left; return what ``emit`` returned for each chunk, in order."""
        if self._buf:
            self._flush(final=True)
        return self.chunk_ids


def read_entries(
    chunks: Iterable[bytes | None],
    what: str = "file list",
    on_damage: Callable[[CorruptionError], None] | None = None,
) -> Iterator[Entry]:
    """The entries of a file list, given its chunks' plain bytes in order.

    A ``None`` in place of a chunk stands for one that could not be read: the entries it
    held (and the one broken across its edges) are lost, and reading resumes at the first
    whole line after it. A malformed line raises :class:`CorruptionError` naming ``what``
    and the line; with ``on_damage`` it is reported there instead and skipped.
    """

    def damage(error: CorruptionError) -> None:
        if on_damage is None:
            raise error
        on_damage(error)

    for first_line, lines in read_lines(chunks, what, damage):

        def bad_line(n: int, exc: CorruptionError, first: int = first_line) -> None:
            damage(CorruptionError(f"{what}: line {first + n}: {exc}"))

        yield from decode_entries(lines, bad_line)


def read_lines(
    chunks: Iterable[bytes | None],
    what: str = "file list",
    on_damage: Callable[[CorruptionError], None] | None = None,
) -> Iterator[tuple[int, list[bytes]]]:
    """The lines of a file list, undecoded, a chunk's worth at a time: (the number of the
    first, the lines). Damage is handled as :func:`read_entries` handles it."""
    rest = b""
    resync = False
    first_line = 1  # the number of the first line in ``lines``

    def damage(error: CorruptionError) -> None:
        if on_damage is None:
            raise error
        on_damage(error)

    for data in chunks:
        if data is None:
            rest, resync = b"", True
            continue
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        if len(rest) > MAX_LINE_BYTES:
            damage(CorruptionError(f"{what}: a line longer than {MAX_LINE_BYTES} bytes"))
            rest, resync = b"", True
        if resync and lines:
            lines.pop(0)  # the tail of an entry that began in the lost chunk
            resync = False
        yield first_line, lines
        first_line += len(lines)
    if rest and not resync:
        damage(CorruptionError(f"{what}: truncated (last line incomplete)"))
