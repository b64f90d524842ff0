"""The engine's notices (the ``kvbackup`` logger: a stale lock removed, a wait for a
lock) shown on stderr as one escaped line each: ``kvbackup: removed a stale lock: ...``."""

from __future__ import annotations

import logging

import click

from ..display import display_name


class _StderrLine(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record must not stop the command
            text = str(record.msg)
        # Lock holders' names come from the repository: no escape sequence reaches the terminal.
        click.echo(f"kvbackup: {display_name(text)}", err=True)


def show_engine_notices() -> None:
    """Send the engine's warnings to stderr (once, however many commands run in-process)."""
    logger = logging.getLogger("kvbackup")
    if not any(isinstance(h, _StderrLine) for h in logger.handlers):
        handler = _StderrLine(logging.WARNING)
        logger.addHandler(handler)
