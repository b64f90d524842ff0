"""kvbackup unlock"""

from __future__ import annotations

from typing import Any

import click

from ..display import display_name
from .common import emit_json, get_repo_options, json_option, repo_options


@click.command("unlock")
@repo_options
@click.option(
    "--remove-all", is_flag=True, help="Remove every lock, live ones too (be sure first)."
)
@json_option
def command(remove_all: bool, as_json: bool, **kwargs: Any) -> None:
    """Remove stale locks: those not refreshed for their lifetime (30 minutes), or whose
    process on this host is gone. (Commands remove the stale locks they meet themselves.)

    \b
    Example:
      kvbackup unlock --repo /mnt/usb/backups
    """
    repo = get_repo_options(kwargs).open()
    try:
        removed = repo.unlock(remove_all=remove_all)
    finally:
        repo.close()
    if as_json:
        emit_json([r.__dict__ for r in removed])
        return
    for r in removed:
        click.echo(
            f"removed {display_name(r.operation)} lock {r.key}: pid {r.pid} on "
            f"{display_name(r.host)}, "
            f"last refreshed {r.age / 60:.0f} min ago"
        )
    if not removed:
        click.echo("no stale locks")
