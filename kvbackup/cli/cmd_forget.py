"""kvbackup forget"""

from __future__ import annotations

from typing import Any

import click

from ..display import display_name
from ..ops.retention import RetentionPolicy, parse_duration, parse_group_by
from .cmd_prune import max_unused_option, print_prune
from .common import (
    emit_json,
    get_repo_options,
    json_option,
    json_progress_option,
    repo_options,
    running,
)
from .selecting import filter_options, get_filter


def _count(name: str, help_text: str) -> Any:
    return click.option(
        f"--keep-{name}", name, type=click.IntRange(-1), default=0, metavar="N", help=help_text
    )


def _within(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _group_by(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    try:
        return parse_group_by(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("forget")
@click.argument("snapshots", nargs=-1)
@repo_options
@_count("last", "Keep the N newest snapshots (-1: all).")
@_count("hourly", "Keep the newest snapshot of each of the N newest hours with one.")
@_count("daily", "Keep the newest snapshot of each of the N newest days with one.")
@_count("weekly", "Keep the newest snapshot of each of the N newest ISO weeks with one.")
@_count("monthly", "Keep the newest snapshot of each of the N newest months with one.")
@_count("yearly", "Keep the newest snapshot of each of the N newest years with one.")
@click.option(
    "--keep-within",
    "within",
    callback=_within,
    metavar="DURATION",
    help="Keep snapshots at most DURATION older than the newest (e.g. 7d, 2w, 1y6m).",
)
@click.option(
    "--keep-tag", "keep_tags", multiple=True, metavar="TAG", help="Keep snapshots tagged TAG."
)
@_count("groups", "Keep every snapshot of the N newest backup groups; drop older groups whole.")
@click.option(
    "--group-by",
    default="host,source",
    show_default=True,
    callback=_group_by,
    help="Apply the rules per these fields (any of host,source,tags; '' for all together).",
)
@filter_options
@click.option("--allow-empty", is_flag=True, help="Allow removing every snapshot of a source.")
@click.option("--dry-run", "-n", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option("--prune", is_flag=True, help="Then free the data the removed snapshots used.")
@max_unused_option
@json_option
@json_progress_option
def command(
    snapshots: tuple[str, ...],
    within: float | None,
    keep_tags: tuple[str, ...],
    group_by: tuple[str, ...],
    allow_empty: bool,
    dry_run: bool,
    prune: bool,
    max_unused: float,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Remove snapshots: those named (SNAPSHOT...), or those the --keep-* rules keep not.

    Rules apply per host and source and combine: a snapshot is kept if any rule keeps it.
    Only complete snapshots count; an interrupted backup is kept until a later backup of
    its source exists. Data is freed by `prune` (or --prune).

    \b
    Example:
      kvbackup forget --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --prune
    """
    counts = {n: kwargs.pop(n) for n in ("last", "hourly", "daily", "weekly", "monthly", "yearly")}
    groups = kwargs.pop("groups")
    select = get_filter(kwargs)
    policy = RetentionPolicy(**counts, within=within, tags=frozenset(keep_tags), groups=groups)
    opts = get_repo_options(kwargs)
    if snapshots and not policy.empty:
        raise click.UsageError("give either SNAPSHOT ids or --keep-* rules, not both")
    repo = opts.open()
    with running(repo, not as_json) as progress:
        result = repo.forget(
            None if snapshots else policy,
            snapshots,
            group_by=group_by,
            select=select,
            dry_run=dry_run,
            allow_empty=allow_empty,
            prune=prune,
            max_unused=max_unused,
            progress=progress,
        )
    if as_json:
        emit_json(result.as_dict())
        return
    removing = "would remove" if dry_run else "remove"
    for verb, items in (("keep", result.kept), (removing, result.removed)):
        for item in items:
            why = ", ".join(item.reasons) or "no rule keeps it"
            where = f"{display_name(item.host)}  {display_name(item.source)}"
            click.echo(f"{verb:<12} {item.id:<20} {where}  ({why})")
    click.echo(
        f"{len(result.kept)} kept, {len(result.removed)} "
        + ("would be removed" if dry_run else "removed")
    )
    if result.prune is not None:
        print_prune(result.prune)
