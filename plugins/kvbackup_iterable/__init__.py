"""Built-in source plugin: any Python iterable of (name, bytes or binary file) pairs."""

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


class IterableSource(Source):
    """Files given as ``(name, content)`` pairs, or a mapping of name to content.

    ``name`` is a ``str`` or ``bytes`` relative path with ``/`` separators; ``content`` is
    ``bytes`` or a binary file object (read once, when the engine reaches it). Folders are
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
        raise OSError(
            f"{display_name(entry.path)}: content is neither bytes nor a binary file object"
        )


def _accepts(spec: Any) -> bool:
    return isinstance(spec, Iterable) and not isinstance(spec, (str, bytes, os.PathLike))


def _factory(spec: Any, options: IterableOptions) -> Source:
    return IterableSource(spec, identity=options.identity)


@hookimpl
def kvbackup_register_sources(register: RegisterSource) -> None:
    register(
        "iterable",
        _factory,
        accepts=_accepts,
        options=IterableOptions,
        description="a Python iterable of (name, bytes | binary file) pairs, or a mapping",
    )
