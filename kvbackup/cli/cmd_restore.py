"""kvbackup restore"""

from __future__ import annotations

from typing import Any

import click

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
from .selecting import filter_options, get_filter


@click.command("restore")
@click.argument("snapshot")
@click.argument("target", type=click.Path(file_okay=False))
@click.argument("paths", nargs=-1)
@repo_options
@filter_options
@click.option("--include", multiple=True, help="Restore only entries matching this glob.")
@click.option("--exclude", multiple=True, help="Leave out entries matching this glob.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@json_option
@json_progress_option
def command(
    snapshot: str,
    target: str,
    paths: tuple[str, ...],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    quiet: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Restore SNAPSHOT (an id, a unique prefix, or 'latest') into TARGET.

    With PATHS, only those files or folders (and what they contain) are restored. With
    --host/--path/--tag, 'latest' is the latest snapshot that matches.

    \b
    Example:
      kvbackup restore latest /tmp/restored docs/report.txt
    """
    select = get_filter(kwargs)
    opts = get_repo_options(kwargs)
    repo = opts.open()
    whole = not (paths or include or exclude)
    chosen = repo.resolve_snapshot(snapshot, select=select)
    totals = (lambda: snapshot_totals(repo, chosen)) if whole else None
    with running(repo, not (quiet or as_json), totals=totals) as progress:
        result = repo.restore(
            chosen, target, paths=paths, include=include, exclude=exclude, progress=progress
        )
    for path, error in result.errors:
        warn(f"{path}: not restored: {error}")
    if as_json:
        emit_json(result.as_dict())
    elif not quiet:
        click.echo(
            f"restored snapshot {result.snapshot.id}: {result.files} files, "
            f"{result.dirs} dirs, {result.symlinks} symlinks, "
            f"{human_size(result.bytes)} in {result.seconds:.1f}s"
        )
        click.echo(f"  {requests_line(result.requests)}")
    if result.errors:
        # Only when every error is the target's (permission denied) is it not the
        # repository's damage.
        local = result.target_errors == len(result.errors)
        raise SystemExit(ExitCode.TARGET if local else ExitCode.CORRUPT)


def snapshot_totals(repo: Any, snapshot: Any) -> tuple[int, int] | None:
    """The files and bytes a backup recorded for ``snapshot`` (what a restore writes)."""
    stats = repo.resolve_snapshot(snapshot).stats
    if "files" in stats and "bytes" in stats:
        return int(stats["files"]), int(stats["bytes"])
    return None
