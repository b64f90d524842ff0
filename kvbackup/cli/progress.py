"""A live status line on a terminal (rich)."""

from __future__ import annotations

from typing import Any

from ..core.progress import ProgressEvent
from .sizes import human_size


class TerminalProgress:
    """Callable progress reporter; call :meth:`stop` when done."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.status import Status

        self._console = Console(stderr=True)
        self._status: Any = Status("starting", console=self._console)
        self._status.start()

    def __call__(self, event: ProgressEvent) -> None:
        path = event.path if len(event.path) < 60 else "…" + event.path[-59:]
        self._status.update(
            f"{event.phase}: {event.files} files, {human_size(event.bytes)}"
            f" ({human_size(event.bytes_read)} read) {path}"
        )

    def stop(self) -> None:
        self._status.stop()
