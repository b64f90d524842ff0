"""A stream as a one-file source: standard input, or the output of a command."""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from kvbackup.errors import SourceError
from kvbackup.sources import FILE, Entry, ErrorCallback, Source, check_relative_path


class StreamSource(Source):
    """One file, ``name``, whose content is read from the stream ``open_stream()`` gives.

    The size is unknown until the stream ends; the content is hashed, so an unchanged
    stream stores nothing new.
    """

    ordered = False

    def __init__(self, open_stream: Callable[[], BinaryIO], name: str, identity: str):
        raw = os.fsencode(name)
        try:
            check_relative_path(raw.strip(b"/"))
        except ValueError as exc:
            raise SourceError(f"stream name: {exc}") from None
        self._open_stream = open_stream
        self._name = raw.strip(b"/")
        self.identity = identity

    def scan(self, on_error: ErrorCallback) -> Iterator[Entry]:
        yield Entry(path=self._name, kind=FILE, size=-1, mtime_ns=time.time_ns(), mode=0o644)

    def open(self, entry: Entry) -> BinaryIO:
        return self._open_stream()


def stdin_source(name: str = "stdin") -> StreamSource:
    """Standard input, stored as the file ``name``."""
    return StreamSource(lambda: os.fdopen(os.dup(sys.stdin.fileno()), "rb"), name, f"stdin:{name}")


class _CommandOutput(io.RawIOBase):
    """The standard output of a running command; at its end, a non-zero exit status is
    raised as :class:`SourceError` (which fails the backup: nothing is committed)."""

    def __init__(self, argv: list[str]):
        self._argv = argv
        try:
            self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise SourceError(f"cannot run {shlex.join(argv)}: {exc.strerror or exc}") from None
        assert self._proc.stdout is not None
        self._out: Any = self._proc.stdout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._out.readinto(buffer)
        if not n:
            self._check()
        return n or 0

    def _check(self) -> None:
        status = self._proc.wait()
        if status != 0:
            raise SourceError(
                f"command {shlex.join(self._argv)} exited with status {status}: backup not saved"
            )

    def close(self) -> None:
        if not self.closed:
            self._out.close()
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
        super().close()


def command_source(argv: list[str] | str, name: str = "") -> StreamSource:
    """The standard output of the command ``argv``, stored as the file ``name``."""
    args = shlex.split(argv) if isinstance(argv, str) else [str(a) for a in argv]
    if not args:
        raise SourceError("no command given to --stdin-from-command")
    name = name or "stdin"
    return StreamSource(
        lambda: io.BufferedReader(_CommandOutput(args)),
        name,
        f"command:{shlex.join(args)}",
    )
