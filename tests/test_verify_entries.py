"""verify applies restore's checks to every entry: a file whose chunks do not add up to
its size is damage, reported by verify and never restored as a success."""

from __future__ import annotations

from pathlib import Path

import pytest
from kvtools import init_repo, kvb, kvb_json, write_tree

from kvbackup.errors import CorruptionError, ExitCode
from kvbackup.format.filelist import FileListWriter, decode_entry, encode_entry, validate_entry
from kvbackup.sources import FILE, Entry


def _backup_with_lying_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> str:
    """Back up a tree where ``bad.txt``'s entry is wrong the way a buggy or hostile writer
    could make it: ``no-chunks`` claims bytes but lists no chunk; ``short`` claims more
    bytes than its chunks hold."""
    repo_url = str(tmp_path / "repo")
    src = write_tree(tmp_path / "src", {"good.txt": b"good\n" * 100, "bad.txt": b"bad\n" * 100})
    real = FileListWriter.add

    def lying(self: FileListWriter, entry: Entry, line: bytes | None = None) -> None:
        if entry.path == b"bad.txt":  # however the file was read, its entry is written here
            entry.size += 7
            if mode == "no-chunks":
                entry.chunks = []
        real(self, entry, line)

    monkeypatch.setattr(FileListWriter, "add", lying)
    with init_repo(repo_url) as repo:
        repo.backup(str(src))
    return repo_url


@pytest.mark.parametrize("mode", ["no-chunks", "short"])
def test_verify_reports_a_file_whose_chunks_do_not_add_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    repo_url = _backup_with_lying_entry(tmp_path, monkeypatch, mode)
    report = kvb_json("verify", "--no-cache", "-r", repo_url, cache=tmp_path / "c", expect=12)
    entries = [p for p in report["problems"] if p["kind"] == "entry"]
    assert len(entries) == 1 and "bad.txt" in entries[0]["message"]


@pytest.mark.parametrize("mode", ["no-chunks", "short"])
def test_restore_does_not_report_success_for_such_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    repo_url = _backup_with_lying_entry(tmp_path, monkeypatch, mode)
    done = kvb("restore", "latest", tmp_path / "out", "-r", repo_url, cache=tmp_path / "c",
               expect=ExitCode.CORRUPT)  # fmt: skip
    assert b"bad.txt" in done.stderr
    assert (tmp_path / "out" / "good.txt").read_bytes() == b"good\n" * 100
    assert not (tmp_path / "out" / "bad.txt").exists()


def test_reading_refuses_a_file_entry_that_claims_bytes_without_chunks() -> None:
    """The field check every reader shares (restore, verify, ls, mount) refuses the entry,
    naming it (escaped), instead of letting it stand for an empty file."""
    validate_entry(Entry(path=b"empty", kind=FILE, size=0))  # an empty file is fine
    with pytest.raises(ValueError, match="a file of 5 bytes that lists no chunks"):
        validate_entry(Entry(path=b"x", kind=FILE, size=5))
    line = encode_entry(Entry(path=b"bad\nname", kind=FILE, size=5)).rstrip(b"\n")
    with pytest.raises(CorruptionError, match=r"bad\\nname: a file of 5 bytes"):
        decode_entry(line)
