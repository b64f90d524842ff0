"""kvbackup prune"""

from __future__ import annotations

from typing import Any

import click

from .common import (
    emit_json,
    get_repo_options,
    human_size,
    json_option,
    json_progress_option,
    repo_options,
    requests_line,
    running,
)
from .parsing import parse_percent


def percent(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_percent(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def max_unused_option(fn: Any) -> Any:
    return click.option(
        "--max-unused",
        default="5%",
        show_default=True,
        callback=percent,
        metavar="PERCENT",
        help="Repack partly used packs until at most this share of a group is unused.",
    )(fn)


def print_prune(result: Any) -> None:
    verb = "would free" if result.dry_run else "freed"
    for gid, why in sorted(result.groups_skipped.items()):
        click.echo(f"group {gid}: left alone: {why}")
    click.echo(
        f"prune {verb} {human_size(result.bytes_freed)}: {len(result.groups_deleted)} unused "
        f"group(s) deleted, {result.packs_deleted} pack(s) deleted, {result.packs_repacked} "
        f"repacked into {result.packs_written} ({result.chunks_repacked} chunks copied), "
        f"{result.orphan_packs_deleted} orphan pack(s), {result.damage_records_deleted} "
        f"damage record(s) and {result.temporaries_deleted} stale temporary file(s) deleted; "
        "index fragments "
        f"{result.fragments_deleted} -> {result.fragments_written}; "
        f"{result.objects_deleted} objects deleted in {result.seconds:.1f}s"
    )
    click.echo(f"  {requests_line(result.requests)}")


@click.command("prune")
@repo_options
@max_unused_option
@click.option("--dry-run", "-n", is_flag=True, help="Say what would be freed; change nothing.")
@click.option("--force", is_flag=True, help="Prune even if verify finds the repository damaged.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@json_option
@json_progress_option
def command(
    max_unused: float, dry_run: bool, force: bool, quiet: bool, as_json: bool, **kwargs: Any
) -> None:
    """Free the space no snapshot uses: delete unused groups, repack partly used packs,
    merge index fragments. Takes the exclusive lock; backups may run meanwhile.

    \b
    Example:
      kvbackup prune --dry-run
    """
    repo = get_repo_options(kwargs).open()
    with running(repo, not (quiet or as_json)) as progress:
        result = repo.prune(max_unused=max_unused, dry_run=dry_run, force=force, progress=progress)
    if as_json:
        emit_json(result.as_dict())
    elif not quiet:
        print_prune(result)
