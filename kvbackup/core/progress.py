"""Progress callbacks, shared by every long operation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class ProgressEvent:
    """What a progress callback is told, several times a second at most."""

    phase: str  # "scan", "backup", "commit", "restore"
    files: int = 0
    bytes: int = 0
    bytes_read: int = 0
    path: str = ""
    #: What the whole run will cover, when known (``None``: not known, or not yet).
    total_files: int | None = None
    total_bytes: int | None = None


Progress = Callable[[ProgressEvent], None]
