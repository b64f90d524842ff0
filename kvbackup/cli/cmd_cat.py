"""kvbackup cat"""

from __future__ import annotations

import sys
from typing import Any

import click

from .common import get_repo_options, repo_options


@click.command("cat")
@click.argument("snapshot")
@click.argument("path")
@repo_options
def command(snapshot: str, path: str, **kwargs: Any) -> None:
    """Write the file PATH of SNAPSHOT to standard output, byte for byte.

    \b
    Example:
      kvbackup cat latest docs/report.txt > report.txt
    """
    repo = get_repo_options(kwargs).open()
    out = sys.stdout.buffer
    try:
        for data in repo.cat(snapshot, path):
            out.write(data)
        out.flush()
    finally:
        repo.close()
