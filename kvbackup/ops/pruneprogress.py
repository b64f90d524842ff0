"""Progress of a prune, told to a :data:`~kvbackup.core.progress.Progress` callback.

Phases: ``check`` (verify's structural check), ``plan`` (reading each group's index and
file lists: ``files`` counts groups), then ``prune`` (the work: ``files`` counts objects
deleted or written of those planned, ``bytes`` the pack bytes repacked of those planned).
Events come from several threads (deletes run in parallel), at most every
:data:`MIN_INTERVAL` seconds, plus one at the end of each phase.
"""

from __future__ import annotations

import threading
import time

from ..core.progress import Progress, ProgressEvent

MIN_INTERVAL = 0.1


class PruneProgress:
    """Counts and tells; does nothing without a callback."""

    def __init__(self, callback: Progress | None):
        self.callback = callback
        self._lock = threading.Lock()
        self._last = 0.0
        self.event = ProgressEvent("check")

    def phase(
        self, name: str, total_files: int | None = None, total_bytes: int | None = None
    ) -> None:
        """Start phase ``name`` (its counts from zero)."""
        with self._lock:
            self.event = ProgressEvent(name, total_files=total_files, total_bytes=total_bytes)
        self._tell(force=True)

    def advance(self, files: int = 0, size: int = 0, path: str = "") -> None:
        with self._lock:
            self.event.files += files
            self.event.bytes += size
            self.event.bytes_read += size
            if path:
                self.event.path = path
        self._tell()

    def done(self) -> None:
        """The end of the current phase: one last event with its final counts."""
        self._tell(force=True)

    def _tell(self, force: bool = False) -> None:
        if self.callback is None:
            return
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last < MIN_INTERVAL:
                return
            self._last = now
            e = self.event
            snapshot = ProgressEvent(
                e.phase, e.files, e.bytes, e.bytes_read, e.path, e.total_files, e.total_bytes
            )
        self.callback(snapshot)
