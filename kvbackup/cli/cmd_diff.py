"""kvbackup diff"""

from __future__ import annotations

from typing import Any

import click

from ..display import display_name
from .common import emit_json, get_repo_options, json_option, repo_options

_MARK = {"added": "+", "removed": "-", "modified": "M", "metadata": "m"}


@click.command("diff")
@click.argument("before")
@click.argument("after")
@repo_options
@json_option
def command(before: str, after: str, as_json: bool, **kwargs: Any) -> None:
    """What changed from snapshot BEFORE to snapshot AFTER.

    One line per entry: + added, - removed, M modified (content, type or link target),
    m metadata only (mode, mtime, owner).

    \b
    Example:
      kvbackup diff 20261120T020000Z latest
    """
    repo = get_repo_options(kwargs).open()
    try:
        result = repo.diff(before, after)
    finally:
        repo.close()
    if as_json:
        emit_json(result.as_dict())
        return
    for change in result.changes:
        suffix = "/" if change.type == "dir" else ""
        detail = f"  ({', '.join(change.fields)})" if change.fields else ""
        click.echo(f"{_MARK[change.change]} {display_name(change.path)}{suffix}{detail}")
    s = result.summary
    click.echo(
        f"{s['added']} added, {s['removed']} removed, {s['modified']} modified, "
        f"{s['metadata']} metadata only"
    )
