"""What a backup leaves out: gitignore patterns, cache folders, tagged folders, large files,
other file systems.

Patterns have gitignore semantics (through ``pathspec``), anchored at the source root: a
pattern with no ``/`` but a trailing one matches a name at any depth, ``/build`` only at the
root, ``dir/`` only directories, ``**`` any number of folders, and ``!pattern`` re-includes
what an earlier pattern excluded (the last matching pattern wins; as in git, nothing below an
excluded folder can be re-included, since the folder is never read). The rules a backup used
are recorded in its snapshot (``excludes``, see ``docs/format.md``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pathspec

from .sources import DIR, FILE, Entry

#: The first bytes of a valid CACHEDIR.TAG (https://bford.info/cachedir/).
CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str) -> int:
    """``"500"``, ``"10k"``, ``"1.5M"``, ``"2GiB"`` → bytes (units are powers of 1024)."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (try 500, 10K, 1.5M, 2G)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def read_pattern_file(path: str | os.PathLike[str]) -> list[str]:
    """The patterns of a gitignore-style file: blank lines and ``#`` comments dropped."""
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        lines = [line.rstrip("\n").rstrip("\r") for line in fh]
    return [line for line in lines if line.strip() and not line.startswith("#")]


@dataclass
class ExcludeRules:
    """The exclude settings of a backup (what ``--exclude`` and friends say)."""

    patterns: list[str] = field(default_factory=list)
    ipatterns: list[str] = field(default_factory=list)
    exclude_caches: bool = False
    if_present: list[str] = field(default_factory=list)
    larger_than: int | None = None
    one_file_system: bool = False

    @property
    def empty(self) -> bool:
        return self == ExcludeRules()

    def to_json(self) -> dict[str, Any]:
        """The rules as recorded in the snapshot (only what is set)."""
        out: dict[str, Any] = {}
        for key, value in vars(self).items():
            if value not in (None, False, []):
                out[key] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExcludeRules:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class ExcludeMatcher:
    """Decides, entry by entry, what the rules leave out."""

    def __init__(self, rules: ExcludeRules):
        self.rules = rules
        self._spec = pathspec.GitIgnoreSpec.from_lines(rules.patterns)
        self._ispec = pathspec.GitIgnoreSpec.from_lines([p.lower() for p in rules.ipatterns])
        self.excluded = 0

    def excludes_path(self, path: bytes, is_dir: bool) -> bool:
        """``path`` (relative to the source root) matches the patterns."""
        text = os.fsdecode(path) + ("/" if is_dir else "")
        return bool(
            (self.rules.patterns and self._spec.match_file(text))
            or (self.rules.ipatterns and self._ispec.match_file(text.lower()))
        )

    def excludes_dir_content(self, abspath: bytes) -> bool:
        """The folder at ``abspath`` is a tagged cache or holds an ``if_present`` file."""
        for name in self.rules.if_present:
            if os.path.lexists(os.path.join(abspath, os.fsencode(name))):
                return True
        if self.rules.exclude_caches:
            try:
                with open(os.path.join(abspath, b"CACHEDIR.TAG"), "rb") as fh:
                    return fh.read(len(CACHEDIR_SIGNATURE)) == CACHEDIR_SIGNATURE
            except OSError:
                return False
        return False

    def excludes_size(self, size: int) -> bool:
        return self.rules.larger_than is not None and size > self.rules.larger_than

    def excludes_entry(self, entry: Entry) -> bool:
        """What can be judged from the entry alone: its path, and a file's size."""
        if self.excludes_path(entry.path, entry.kind == DIR) or (
            entry.kind == FILE and self.excludes_size(entry.size)
        ):
            self.excluded += 1
            return True
        return False

    def filter(self, entries: Iterator[Entry]) -> Iterator[Entry]:
        """The entries the rules keep, for a source that does not apply them itself
        (anything below an excluded folder is left out too)."""
        cut: bytes | None = None
        for entry in entries:
            if cut is not None and entry.path.startswith(cut):
                self.excluded += 1
                continue
            if self.excludes_entry(entry):
                cut = entry.path + b"/" if entry.kind == DIR else cut
                continue
            yield entry
