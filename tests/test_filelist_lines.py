"""File-list lines as bytes: the encoding is unchanged from earlier versions, an unchanged
file's line is recognised without decoding it, and the parent's list is paired with a new
scan by bytes, decoding (and checking) only what the bytes cannot settle."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from kvbackup.errors import CorruptionError
from kvbackup.format.filelist import decode_entry, encode_entry, match_file_line, read_lines
from kvbackup.format.parentlist import ParentList
from kvbackup.sources import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SYMLINK, Entry

CODES = {FILE: "f", DIR: "d", SYMLINK: "l", FIFO: "p", CHARDEV: "c", BLOCKDEV: "b"}


def put_bytes(record: dict[str, Any], key: str, raw: bytes) -> None:
    try:
        record[key] = raw.decode("utf-8")
    except UnicodeDecodeError:
        record[key + "b"] = base64.b64encode(raw).decode("ascii")


def reference_line(entry: Entry) -> bytes:
    """The line kvbackup 0.1 wrote (a dict, ``json.dumps``): new lines must be the same
    bytes, so file lists written by either dedup against each other."""
    record: dict[str, Any] = {}
    put_bytes(record, "p", entry.path)
    record.update(t=CODES[entry.kind], m=entry.mode, mt=entry.mtime_ns)
    if entry.uid >= 0:
        record.update(u=entry.uid, g=entry.gid)
    if entry.user:
        record["un"] = entry.user
    if entry.group:
        record["gn"] = entry.group
    if entry.kind == FILE:
        record.update(s=entry.size, ct=entry.ctime_ns, i=entry.inode)
        record["c"] = [c.hex() for c in entry.chunks]
        if entry.nlink > 1:
            record["n"] = entry.nlink
        if entry.hardlink is not None:
            put_bytes(record, "h", entry.hardlink)
        if entry.sparse:
            record["sp"] = True
    elif entry.kind == SYMLINK and entry.target is not None:
        put_bytes(record, "l", entry.target)
    elif entry.kind in (CHARDEV, BLOCKDEV):
        record["rd"] = entry.rdev
    if entry.xattrs:
        record["x"] = [
            [base64.b64encode(k).decode(), base64.b64encode(v).decode()]
            for k, v in sorted(entry.xattrs.items())
        ]
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def a_file(**fields: Any) -> Entry:
    values: dict[str, Any] = dict(
        path=b"dir/file.txt",
        kind=FILE,
        mode=0o644,
        size=10,
        mtime_ns=1_700_000_000_123_456_789,
        ctime_ns=1_700_000_001_000_000_000,
        inode=1234,
        uid=1000,
        gid=1000,
        user="ann",
        group="staff",
        chunks=[bytes(range(32)), b"\xff" * 32],
    )
    values.update(fields)
    return Entry(**values)


ENTRIES = [
    a_file(),
    a_file(chunks=[], size=0),
    a_file(path=b'latin1-\xe9t\xe9/\n"\\\x01', user="jöhn\u2028", group='g"\\'),
    a_file(path="ünïcødé 文件 😀".encode(), uid=-1, gid=-1, user="", group=""),
    a_file(xattrs={b"user.b": b"\x00\xff", b"user.a": b""}, nlink=3, hardlink=b"x/\xff"),
    a_file(sparse=True, nlink=2, hardlink="é".encode()),
    Entry(b"d", DIR, 0o755, 0, -5, uid=0, gid=0, user="root", group="root"),
    Entry(b"link", SYMLINK, 0o777, target=b"../\xfftarget", xattrs={b"trusted.x": b"1"}),
    Entry(b"tty", CHARDEV, rdev=(1 << 64) - 1),
    Entry(b"sda", BLOCKDEV, rdev=2049),
    Entry(b"pipe", FIFO),
]


@pytest.mark.parametrize("entry", ENTRIES, ids=range(len(ENTRIES)))
def test_lines_are_byte_for_byte_what_earlier_versions_wrote(entry: Entry) -> None:
    line = encode_entry(entry)
    assert line == reference_line(entry)
    back = decode_entry(line.rstrip(b"\n"))
    back.line = entry.line
    assert back == entry


def test_an_unchanged_files_line_gives_its_chunks_without_decoding() -> None:
    entry = a_file(xattrs={b"user.k": b"v"}, nlink=2)
    line = encode_entry(entry).rstrip(b"\n")
    scanned = a_file(xattrs={b"user.k": b"v"}, nlink=2, chunks=[])
    assert match_file_line(scanned, line) == entry.chunks
    empty = a_file(size=0, chunks=[])
    assert match_file_line(empty, encode_entry(empty).rstrip(b"\n")) == []


def _line_with(**fields: Any) -> bytes:
    record = json.loads(encode_entry(a_file()))
    record.update(fields)
    return json.dumps(record, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "line",
    [
        encode_entry(a_file(size=11)),  # the scanned file differs in any field
        encode_entry(a_file(mtime_ns=1)),
        encode_entry(a_file(ctime_ns=1)),
        encode_entry(a_file(inode=1)),
        encode_entry(a_file(mode=0o600)),
        encode_entry(a_file(uid=0)),
        encode_entry(a_file(user="bob")),
        encode_entry(a_file(xattrs={b"user.new": b"1"})),
        encode_entry(a_file(nlink=2)),
        encode_entry(a_file(sparse=True)),
        encode_entry(a_file(hardlink=b"first")),
        encode_entry(a_file(path=b"dir/other.txt")),
        _line_with(c=[bytes(range(32)).hex().upper()]),  # decodable, but not as written
        _line_with(c=[bytes(range(31)).hex()]),  # a short id
        _line_with(c=[]),  # a file of 10 bytes with no chunks
        _line_with(extra=1),
        _line_with(m=420.0),
        _line_with(m=True),
        json.dumps(json.loads(encode_entry(a_file()))).encode(),  # spaces after separators
        encode_entry(a_file()).rstrip(b"\n") + b" ",
        encode_entry(a_file()).replace(b'","', b'", "'),
    ],
)
def test_a_line_that_is_not_exactly_the_files_own_is_not_matched(line: bytes) -> None:
    assert match_file_line(a_file(chunks=[]), line.rstrip(b"\n")) is None


def lines_of(*entries: Entry | bytes, per_chunk: int = 2) -> list[bytes]:
    """File-list chunks holding the lines of ``entries`` (raw lines as they are)."""
    data = [e if isinstance(e, bytes) else encode_entry(e).rstrip(b"\n") for e in entries]
    return [
        b"".join(line + b"\n" for line in data[i : i + per_chunk])
        for i in range(0, len(data), per_chunk)
    ]


def parent_of(*entries: Entry | bytes) -> ParentList:
    return ParentList(read_lines(lines_of(*entries), "parent"), "parent")


def entry(path: bytes, kind: str = FILE) -> Entry:
    return Entry(path, kind, size=0)


def test_the_scan_is_paired_with_the_parents_lines_of_the_same_path() -> None:
    old_style = json.dumps(json.loads(encode_entry(entry(b"b/y")))).encode()  # another encoding
    parent = parent_of(
        entry(b"a", DIR), entry(b"a/gone"), entry(b"a/x"), entry(b"b", DIR), old_style, entry(b"c")
    )
    found = {
        path: parent.find(entry(path))
        for path in (b"a", b"a/new", b"a/x", b"b", b"b/y", b"b/z", b"c", b"d")
    }
    assert {p for p, f in found.items() if f is not None} == {b"a", b"a/x", b"b", b"b/y", b"c"}
    assert found[b"a/x"] is not None and found[b"a/x"].number == 3
    assert found[b"a/x"].decoded is None  # paired by its bytes
    assert found[b"b/y"] is not None and found[b"b/y"].decoded is not None  # decoded to pair
    assert found[b"b/y"].line == old_style


def test_a_malformed_line_the_scan_passes_over_is_a_corruption_naming_its_line() -> None:
    bad = _line_with(p="a/gone", mt=10**30)
    parent = parent_of(entry(b"a", DIR), bad, entry(b"a/x"))
    assert parent.find(entry(b"a", DIR)) is not None
    with pytest.raises(CorruptionError, match=r"^parent: line 2: malformed entry .*mtime_ns"):
        parent.find(entry(b"a/x"))


def test_a_malformed_line_of_a_scanned_file_is_a_corruption_when_it_is_used() -> None:
    bad = _line_with(p="a/x", mt=10**30)
    parent = parent_of(entry(b"a", DIR), bad)
    parent.find(entry(b"a", DIR))
    found = parent.find(entry(b"a/x"))
    assert found is not None and match_file_line(entry(b"a/x"), found.line) is None
    with pytest.raises(CorruptionError, match=r"^parent: line 2: malformed entry"):
        parent.entry(found, entry(b"a/x"))


def test_a_line_repeating_its_path_field_is_not_taken_for_another_path() -> None:
    # pairs by its first "p", decodes to its last: it is not the scanned file's entry
    line = encode_entry(entry(b"a")).rstrip(b"\n")[:-1] + b',"p":"b"}'
    parent = parent_of(line)
    found = parent.find(entry(b"a"))
    assert found is not None and parent.entry(found, entry(b"a")) is None
