"""kvbackup verify"""

from __future__ import annotations

from typing import Any

import click

from ..display import display_name
from ..errors import ExitCode
from .common import (
    emit_json,
    get_repo_options,
    human_size,
    json_option,
    json_progress_option,
    repo_options,
    requests_line,
    running,
    warn,
)
from .parsing import parse_duration, parse_percent


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _percent(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_percent(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("verify")
@click.argument("args", nargs=-1, metavar="[[SNAPSHOT] SOURCE]")
@repo_options
@click.option(
    "--full",
    is_flag=True,
    help="Restore SNAPSHOT (default: the latest of SOURCE) to a temporary folder and "
    "compare it with the folder SOURCE.",
)
@click.option(
    "--max-age",
    default="30d",
    metavar="AGE",
    show_default=True,
    callback=_duration,
    help="Read again packs last verified longer ago than this (30d, 12h, 0 = all).",
)
@click.option(
    "--read-data-subset",
    default="100%",
    show_default=True,
    callback=_percent,
    metavar="N%",
    help="Read at most N% of the packs (those due, never verified first).",
)
@click.option(
    "--temp-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="With --full: where to make the temporary folder.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but problems.")
@json_option
@json_progress_option
def command(
    args: tuple[str, ...],
    full: bool,
    max_age: float,
    read_data_subset: float,
    temp_dir: str | None,
    quiet: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Check the repository: structure, then data (exits 12 on any damage).

    Packs verified within --max-age are not read again (a local record keeps track).
    With --full SOURCE, or --full SNAPSHOT SOURCE: restore and compare with SOURCE on
    disk, print every difference and exit 16 if there is one.

    \b
    Example:
      kvbackup verify --read-data-subset 10%
    """
    if full and not 1 <= len(args) <= 2:
        raise click.UsageError("verify --full takes [SNAPSHOT] SOURCE")
    if not full and args:
        raise click.UsageError("SNAPSHOT and SOURCE are for verify --full")
    opts = get_repo_options(kwargs)
    no_cache = opts.no_cache  # --no-cache: no local metadata, every pack read again
    repo = opts.open()
    with running(repo, not (quiet or as_json)) as progress:
        if full:
            source = args[-1]
            snapshot = args[0] if len(args) == 2 else None
            full_result = repo.verify_full(source, snapshot, temp_dir=temp_dir, progress=progress)
        else:
            result = repo.verify(
                max_age=max_age,
                read_data_subset=read_data_subset,
                use_cache=not no_cache,
                progress=progress,
            )
    if full:
        _report_full(full_result, quiet, as_json)
    else:
        _report(result, quiet, as_json)


def _report(result: Any, quiet: bool, as_json: bool) -> None:
    for message in result.warnings:
        warn(message)
    if as_json:
        emit_json(result.as_dict())
    else:
        if not quiet:
            click.echo(
                f"checked {result.snapshots} snapshots in {result.groups} groups: "
                f"{result.index_fragments} index fragments, {result.packs} packs"
            )
            click.echo(
                f"  data: {result.packs_read} packs read ({result.chunks_checked} chunks, "
                f"{human_size(result.bytes_checked)}), {result.packs_fresh} verified recently, "
                f"{result.packs_not_selected} left for a later run"
            )
            click.echo(f"  {requests_line(result.requests)}")
        for problem in result.problems:
            click.echo(f"problem: {problem.message}")
        for cid, reason in result.damaged_chunks.items():
            click.echo(f"damaged chunk {cid}: {reason}")
        for hit in result.affected:
            what = "its file list (no file can be listed)" if hit.path is None else hit.path
            click.echo(f"  snapshot {hit.snapshot}: {what}")
        if result.damage_recorded:
            click.echo(
                f"damage recorded in {result.damage_recorded}: the next backup of the group "
                "stores the damaged chunks again (where the source still has them)"
            )
        if result.ok and not quiet:
            click.echo("no problems found")
        elif not result.ok:
            click.echo(
                f"{len(result.problems)} problems: {len(result.damaged_chunks)} damaged chunks "
                f"spoil {len(result.affected)} entries of "
                f"{len({a.snapshot for a in result.affected})} snapshots"
            )
    if not result.ok:
        raise SystemExit(ExitCode.CORRUPT)


def _report_full(result: Any, quiet: bool, as_json: bool) -> None:
    if as_json:
        emit_json(result.as_dict())
    else:
        for diff in result.damaged:
            click.echo(f"damaged: {display_name(diff.path)}: {diff.detail}")
        for diff in result.differences:
            click.echo(f"{diff.kind}: {display_name(diff.path)}: {display_name(diff.detail)}")
        if not quiet:
            summary = (
                "no differences"
                if result.ok
                else f"{len(result.differences)} differences, {len(result.damaged)} damaged"
            )
            click.echo(
                f"compared snapshot {result.snapshot} with {result.source}: "
                f"{result.entries} entries, {summary}"
            )
    if result.damaged:
        raise SystemExit(ExitCode.CORRUPT)
    if result.differences:
        raise SystemExit(ExitCode.DIFFERENCES)
