"""kvbackup snapshots"""

from __future__ import annotations

from typing import Any

import click

from .common import emit_json, get_repo_options, human_size, json_option, repo_options


@click.command("snapshots")
@repo_options
@json_option
def command(as_json: bool, **kwargs: Any) -> None:
    """List the snapshots, oldest first.

    \b
    Example:
      kvbackup snapshots --repo /mnt/usb/backups --json
    """
    repo = get_repo_options(kwargs).open()
    try:
        snaps = repo.snapshots()
    finally:
        repo.close()
    if as_json:
        emit_json([s.to_json() | {"filelist": len(s.filelist)} for s in snaps])
        return
    if not snaps:
        click.echo("no snapshots")
        return
    click.echo(f"{'ID':<20} {'STATE':<10} {'GROUP':<16} {'HOST':<12} {'SIZE':>10}  SOURCE")
    for s in snaps:
        click.echo(
            f"{s.id:<20} {s.state:<10} {s.group:<16} {s.host[:12]:<12} "
            f"{human_size(s.stats.get('bytes', 0)):>10}  {s.source}"
        )
