"""Built-in source plugins: any Python iterable of (name, content) pairs, standard input,
and the output of a command."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from kvbackup import hookimpl
from kvbackup.display import display_name
from kvbackup.errors import SourceError
from kvbackup.options import option
from kvbackup.sources import FILE, Entry, ErrorCallback, Source, check_relative_path

if TYPE_CHECKING:
    from kvbackup.hookspecs import RegisterSource


@dataclass(frozen=True)
class IterableOptions:
    """Options of the iterable source."""

    identity: str = option("", help="what the backup is of (default: the iterable's type)")


@dataclass(frozen=True)
class StreamOptions:
    """Options of the stdin and command sources."""

    name: str = option("", help="the name the stream is stored under")


class IterableSource(Source):
    """Files given as ``(name, content)`` pairs, or a mapping of name to content.

    ``name`` is a ``str`` or ``bytes`` relative path with ``/`` separators; ``content`` is
    ``bytes``, a binary file object (read once, when the engine reaches it), or a callable
    returning one (called when the engine reaches it). Folders are
    implied by the names. Entries keep the given order, so the engine does not compare them
    with the parent snapshot by metadata: their content is hashed, and deduplication keeps
    unchanged content from being stored again.
    """

    ordered = False

    def __init__(self, items: Iterable[Any], identity: str = "") -> None:
        self._items = items.items() if isinstance(items, Mapping) else items
        self.identity = identity or f"python-iterable:{type(items).__name__}"
        self._now = time.time_ns()

    def scan(self, on_error: ErrorCallback) -> Iterator[Entry]:
        for item in self._items:
            try:
                name, content = item
            except (TypeError, ValueError):
                raise SourceError(
                    f"iterable source: expected (name, content), got {item!r}"
                ) from None
            raw = os.fsencode(name) if isinstance(name, str) else bytes(name)
            try:
                check_relative_path(raw)
            except ValueError as exc:
                raise SourceError(f"iterable source: {exc}") from None
            size = len(content) if isinstance(content, (bytes, bytearray, memoryview)) else -1
            yield Entry(path=raw, kind=FILE, size=size, mtime_ns=self._now, handle=content)

    def open(self, entry: Entry) -> BinaryIO:
        content = entry.handle
        if isinstance(content, (bytes, bytearray, memoryview)):
            return io.BytesIO(bytes(content))
        if hasattr(content, "read"):
            return content
        if callable(content):
            stream = content()
            if isinstance(stream, (bytes, bytearray, memoryview)):
                return io.BytesIO(bytes(stream))
            if hasattr(stream, "read"):
                return stream
        raise OSError(
            f"{display_name(entry.path)}: content is neither bytes, a binary file object, "
            "nor a callable returning one"
        )


def _accepts(spec: Any) -> bool:
    if not isinstance(spec, Iterable) or isinstance(spec, (str, bytes, os.PathLike)):
        return False
    # A list of paths is for the paths source, not (name, content) pairs.
    return not (
        isinstance(spec, (list, tuple))
        and spec
        and all(isinstance(p, (str, bytes, os.PathLike)) for p in spec)
    )


def _factory(spec: Any, options: IterableOptions) -> Source:
    return IterableSource(spec, identity=options.identity)


def _accepts_stdin(spec: Any) -> bool:
    return isinstance(spec, str) and spec == "-"


def _stdin_factory(spec: Any, options: StreamOptions) -> Source:
    from .streams import stdin_source

    if spec not in ("-", "", None):
        raise SourceError(f"the stdin source reads standard input ('-'), not {spec!r}")
    return stdin_source(options.name or "stdin")


def _command_factory(spec: Any, options: StreamOptions) -> Source:
    from .streams import command_source

    return command_source(spec, options.name)


@hookimpl
def kvbackup_register_sources(register: RegisterSource) -> None:
    register(
        "iterable",
        _factory,
        accepts=_accepts,
        options=IterableOptions,
        description="a Python iterable of (name, bytes | binary file) pairs, or a mapping",
    )
    register(
        "stdin",
        _stdin_factory,
        accepts=_accepts_stdin,
        options=StreamOptions,
        description="standard input ('-') as one file (option name=NAME)",
    )
    register(
        "command",
        _command_factory,
        options=StreamOptions,
        description="the output of a command (argv) as one file; fails if it exits non-zero",
    )
