"""Progress of a long command: a rich progress bar on a terminal, or JSON lines.

Both take :class:`~kvbackup.backup.ProgressEvent` calls from the engine. Totals come from
the event when the operation knows them (verify, copy), or are set from outside: a scan
of the source running ahead of a backup (:meth:`ProgressReporter.scan_ahead`), the recorded
size of the snapshot a restore writes.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any, TextIO

from ..core.progress import ProgressEvent
from ..display import display_name, json_safe
from .sizes import human_size


class ProgressReporter:
    """What the displays share: totals (given or scanned ahead), rate and ETA."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.total_files: int | None = None
        self.total_bytes: int | None = None
        self._scanner: threading.Thread | None = None
        self._stop = threading.Event()

    def set_total(self, files: int | None, size: int | None) -> None:
        self.total_files, self.total_bytes = files, size

    def scan_ahead(self, root: str) -> None:
        """Count the files and bytes under ``root`` on a thread, so the display has totals
        without delaying the backup (which reads the same folders at the same time)."""

        def scan() -> None:
            files = size = 0
            stack = [root]
            while stack and not self._stop.is_set():
                try:
                    with os.scandir(stack.pop()) as it:
                        for entry in it:
                            try:
                                if entry.is_dir(follow_symlinks=False):
                                    stack.append(entry.path)
                                elif entry.is_file(follow_symlinks=False):
                                    files += 1
                                    size += entry.stat(follow_symlinks=False).st_size
                            except OSError:
                                continue
                except OSError:
                    continue
            if not self._stop.is_set():
                self.set_total(files, size)

        self._scanner = threading.Thread(target=scan, name="kvbackup-scan", daemon=True)
        self._scanner.start()

    def totals(self, event: ProgressEvent) -> tuple[int | None, int | None]:
        files = event.total_files if event.total_files is not None else self.total_files
        size = event.total_bytes if event.total_bytes is not None else self.total_bytes
        return files, size

    def rate_and_eta(self, event: ProgressEvent) -> tuple[float, float | None]:
        """Bytes per second so far, and seconds left (by bytes, else by files)."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = event.bytes / elapsed
        files, size = self.totals(event)
        if size and event.bytes:
            return rate, max(0.0, (size - event.bytes) / rate)
        if files and event.files:
            return rate, max(0.0, (files - event.files) * elapsed / event.files)
        return rate, None

    def __call__(self, event: ProgressEvent) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()


class TerminalProgress(ProgressReporter):
    """A rich progress bar on stderr: files and bytes of the total, rate, ETA, file."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[eta]} {task.fields[path]}"),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task("starting", total=None, counts="", eta="", path="")
        self._progress.start()

    def __call__(self, event: ProgressEvent) -> None:
        files, size = self.totals(event)
        rate, eta = self.rate_and_eta(event)
        counts = f"{event.files}" + (f"/{files}" if files is not None else "") + " files"
        counts += f", {human_size(event.bytes)}" + (
            f"/{human_size(size)}" if size is not None else ""
        )
        counts += f", {human_size(rate)}/s"
        if size:
            total, completed = size, min(event.bytes, size)
        elif files:
            total, completed = files, min(event.files, files)
        else:
            total, completed = None, 0
        shown = display_name(event.path)  # no escape sequence reaches the terminal
        path = shown if len(shown) < 50 else "…" + shown[-49:]
        self._progress.update(
            self._task,
            description=event.phase,
            total=total,
            completed=completed,
            counts=counts,
            eta=f"ETA {_clock(eta)}" if eta is not None else "",
            path=path,
        )

    def stop(self) -> None:
        super().stop()
        self._progress.stop()


class JsonProgress(ProgressReporter):
    """One JSON object per line on stderr for each event, then ``{"event": "done"}``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream or sys.stderr
        self._lock = threading.Lock()

    def _emit(self, data: dict[str, Any]) -> None:
        with self._lock:
            self._stream.write(json.dumps(data, sort_keys=True) + "\n")
            self._stream.flush()

    def __call__(self, event: ProgressEvent) -> None:
        files, size = self.totals(event)
        rate, eta = self.rate_and_eta(event)
        self._emit(
            {
                "event": "progress",
                "phase": event.phase,
                "files": event.files,
                "bytes": event.bytes,
                "bytes_read": event.bytes_read,
                "total_files": files,
                "total_bytes": size,
                "path": json_safe(event.path),
                "elapsed": round(time.monotonic() - self.started, 3),
                "bytes_per_second": round(rate),
                "eta_seconds": round(eta, 1) if eta is not None else None,
            }
        )

    def stop(self) -> None:
        super().stop()
        self._emit({"event": "done", "elapsed": round(time.monotonic() - self.started, 3)})


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
