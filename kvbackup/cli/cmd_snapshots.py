"""kvbackup snapshots"""

from __future__ import annotations

from itertools import groupby
from typing import Any

import click

from ..errors import ExitCode
from ..ops.retention import grouping_key, parse_group_by
from .common import emit_json, get_repo_options, human_size, json_option, repo_options
from .selecting import filter_options, get_filter


def _group_by(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    try:
        return parse_group_by(value or "")
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("snapshots")
@repo_options
@filter_options
@click.option(
    "--group-by",
    callback=_group_by,
    metavar="FIELDS",
    help="Show the snapshots in sections by these fields (any of host,source,tags).",
)
@json_option
def command(as_json: bool, group_by: tuple[str, ...], **kwargs: Any) -> None:
    """List the snapshots, oldest first.

    \b
    Example:
      kvbackup snapshots --repo /mnt/usb/backups --json
    """
    select = get_filter(kwargs)
    repo = get_repo_options(kwargs).open()
    try:
        snaps = select.apply(repo.snapshots())
        damaged = bool(repo.damage)
    finally:
        repo.close()
    _show(snaps, group_by, as_json)
    if damaged:  # the rest is listed, the damage warned about: the listing is not whole
        raise SystemExit(ExitCode.CORRUPT)


def _show(snaps: list[Any], group_by: tuple[str, ...], as_json: bool) -> None:
    """Print ``snaps`` as a table (in sections by ``group_by``) or as JSON."""

    def key(s: Any) -> tuple[Any, ...]:
        return grouping_key(group_by, s.host, s.source, s.tags)

    sections = [(k, list(v)) for k, v in groupby(sorted(snaps, key=key), key=key)]
    if as_json:
        rows = [[s.to_json() | {"filelist": len(s.filelist)} for s in ss] for _, ss in sections]
        if not group_by:
            emit_json(rows[0] if rows else [])
        else:
            emit_json(
                [
                    {"group": dict(zip(group_by, k, strict=True)), "snapshots": r}
                    for (k, _), r in zip(sections, rows, strict=True)
                ]
            )
        return
    if not snaps:
        click.echo("no snapshots")
        return
    for n, (k, section) in enumerate(sections):
        if group_by:
            title = ", ".join(
                f"{f} {','.join(v) if isinstance(v, tuple) else v}"
                for f, v in zip(group_by, k, strict=True)
            )
            click.echo(("\n" if n else "") + f"== {title}")
        width = max(20, *(len(s.id) for s in section))  # ids of earlier versions are shorter
        click.echo(f"{'ID':<{width}} {'STATE':<10} {'GROUP':<16} {'HOST':<12} {'SIZE':>10}  SOURCE")
        for s in section:
            tags = f"  [{','.join(s.tags)}]" if s.tags else ""
            click.echo(
                f"{s.id:<{width}} {s.state:<10} {s.group:<16} {s.host[:12]:<12} "
                f"{human_size(s.stats.get('bytes', 0)):>10}  {s.source}{tags}"
            )
