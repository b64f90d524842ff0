"""The parent snapshot's file list, walked beside a new scan of the same source.

An incremental backup meets every line of its parent's file list once. Decoding each line
into an entry and checking its every field was a quarter of an unchanged re-run; here a
line is first compared, as bytes, with what the scanned entry would be written as (its path
field to pair them; a file's whole line to find it unchanged, see
:func:`~kvbackup.format.filelist.match_file_line`), and decoded (and checked, with the same
one-line error as any reader's) only when the bytes cannot settle it: a path the scan no
longer has, or has in another encoding, or a file whose line differs.

A line the backup carries into the new snapshot is therefore either byte for byte the line
it would write itself or decoded and checked; lines it does not use are not all checked
(``verify`` reads every line).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from ..errors import CorruptionError
from ..sources import Entry
from .filelist import decode_entry, path_field


class ParentLine(NamedTuple):
    """A line of the parent's list with the path of a scanned entry."""

    number: int
    line: bytes
    #: The line's entry if it had to be decoded to be paired, else ``None``.
    decoded: Entry | None


class ParentList:
    """A cursor over the parent's file list for entries given in the list's order."""

    def __init__(self, batches: Iterator[tuple[int, list[bytes]]], what: str) -> None:
        self._batches = batches
        self._what = what
        self._lines: list[bytes] = []
        self._first = 1  # the number of ``_lines[0]``
        self._pos = 0
        self._decoded: Entry | None = None  # the current line's entry, once decoded
        self._key = b""

    def find(self, entry: Entry) -> ParentLine | None:
        """The line of ``entry``'s path, if the parent has one. Entries must come sorted
        by :meth:`Entry.sort_key`, each once; lines before ``entry``'s path are passed."""
        field = path_field(entry)
        key = None
        while True:
            if self._pos >= len(self._lines) and not self._next_batch():
                return None
            line = self._lines[self._pos]
            number = self._first + self._pos
            if line.startswith(field):
                self._advance()
                return ParentLine(number, line, None)
            if self._decoded is None:
                self._decoded = self.decode(number, line)
                self._key = self._decoded.sort_key()
            if key is None:
                key = entry.sort_key()
            pkey, decoded = self._key, self._decoded
            if pkey > key:
                return None
            self._advance()
            if pkey == key:
                return ParentLine(number, line, decoded)

    def entry(self, found: ParentLine, entry: Entry) -> Entry | None:
        """The parent's entry on ``found``'s line, checked; ``None`` if it turns out to
        name another path than ``entry`` (a line that repeats its path field)."""
        decoded = found.decoded or self.decode(found.number, found.line)
        return decoded if decoded.path == entry.path else None

    def decode(self, number: int, line: bytes) -> Entry:
        """The checked entry of one line; :class:`CorruptionError` naming the line if it
        is malformed."""
        try:
            return decode_entry(line)
        except CorruptionError as exc:
            raise CorruptionError(f"{self._what}: line {number}: {exc}") from None

    def _advance(self) -> None:
        self._pos += 1
        self._decoded = None

    def _next_batch(self) -> bool:
        for first, lines in self._batches:
            if lines:
                self._first, self._lines, self._pos = first, lines, 0
                return True
        return False
