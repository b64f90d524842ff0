"""The ``kvbackup`` command's entry point, kept outside the ``kvbackup`` package on purpose.

Importing the package loads most of kvbackup (its public API). Ctrl-C while that happens
must still be one line and exit code 130, not a traceback, so the handler is installed here,
before the package is imported, using only modules the interpreter has loaded already.
:func:`kvbackup.cli.main.main` hands SIGINT back to Python once a command can clean up.
"""

from __future__ import annotations

import _signal
import os


def _interrupted_at_start(signum: int, frame: object) -> None:
    os.write(2, b"kvbackup: interrupted\n")
    os._exit(130)


def main() -> None:
    """Console-script entry point."""
    _signal.signal(_signal.SIGINT, _interrupted_at_start)
    from kvbackup.cli.main import main as run

    run()
