"""The file list of a snapshot: one JSON line per entry, cut into metadata chunks.

Lines are written in the source's order. The byte stream is cut with FastCDC, so the file
list of an unchanged tree dedups against its parent's, and an incremental backup reads only
its parent's list, never all earlier ones. See ``docs/format.md`` for the fields.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from ..errors import CorruptionError
from ..sources import DIR, FILE, SYMLINK, Entry
from .chunker import ID_BYTES, METADATA_CHUNKS, Chunker

_KIND_CODES = {FILE: "f", DIR: "d", SYMLINK: "l"}
_CODE_KINDS = {v: k for k, v in _KIND_CODES.items()}
_FLUSH_AT = 1 << 20
R = TypeVar("R")


def _put_bytes(record: dict[str, Any], key: str, raw: bytes) -> None:
    try:
        record[key] = raw.decode("utf-8")
    except UnicodeDecodeError:
        record[key + "b"] = base64.b64encode(raw).decode("ascii")


def _get_bytes(record: dict[str, Any], key: str) -> bytes | None:
    if key in record:
        return str(record[key]).encode("utf-8")
    if key + "b" in record:
        return base64.b64decode(record[key + "b"], validate=True)
    return None


def encode_entry(entry: Entry) -> bytes:
    """One file-list line for ``entry`` (newline included)."""
    record: dict[str, Any] = {}
    _put_bytes(record, "p", entry.path)
    record["t"] = _KIND_CODES[entry.kind]
    record["m"] = entry.mode
    record["mt"] = entry.mtime_ns
    if entry.uid >= 0:
        record["u"] = entry.uid
        record["g"] = entry.gid
    if entry.kind == FILE:
        record["s"] = entry.size
        record["ct"] = entry.ctime_ns
        record["i"] = entry.inode
        record["c"] = [c.hex() for c in entry.chunks]
    elif entry.kind == SYMLINK and entry.target is not None:
        _put_bytes(record, "l", entry.target)
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def decode_entry(line: bytes) -> Entry:
    """The entry of one file-list line; :class:`CorruptionError` if malformed."""
    try:
        return _entry(json.loads(line), line)
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptionError(f"file list: malformed entry ({exc})") from None


def decode_entries(lines: list[bytes]) -> list[Entry]:
    """The entries of several lines, parsed in one call (much faster than line by line)."""
    try:
        records = json.loads(b"[" + b",".join(lines) + b"]")
        if len(records) != len(lines):
            raise ValueError("a line holds more than one entry")
    except ValueError:
        return [decode_entry(line) for line in lines]  # find and name the bad line
    try:
        return [_entry(record, line) for record, line in zip(records, lines, strict=True)]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptionError(f"file list: malformed entry ({exc})") from None


def _entry(record: dict[str, Any], line: bytes) -> Entry:
    path = _get_bytes(record, "p")
    if path is None:
        raise ValueError("no path")
    chunks = [bytes.fromhex(c) for c in record.get("c", ())]
    if any(len(c) != ID_BYTES for c in chunks):
        raise ValueError("bad chunk id")
    return Entry(
        path=path,
        kind=_CODE_KINDS[record["t"]],
        mode=int(record["m"]),
        size=int(record.get("s", 0)),
        mtime_ns=int(record["mt"]),
        ctime_ns=int(record.get("ct", 0)),
        inode=int(record.get("i", 0)),
        uid=int(record.get("u", -1)),
        gid=int(record.get("g", -1)),
        target=_get_bytes(record, "l"),
        chunks=chunks,
        line=line,
    )


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


def read_entries(chunks: Iterable[bytes | None]) -> Iterator[Entry]:
    """The entries of a file list, given its chunks' plain bytes in order.

    A ``None`` in place of a chunk stands for one that could not be read: the entries it
    held (and the one broken across its edges) are lost, and reading resumes at the first
    whole line after it.
    """
    rest = b""
    resync = False
    for data in chunks:
        if data is None:
            rest, resync = b"", True
            continue
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        if resync and lines:
            lines.pop(0)  # the tail of an entry that began in the lost chunk
            resync = False
        yield from decode_entries(lines)
    if rest and not resync:
        raise CorruptionError("file list: truncated (last line incomplete)")
