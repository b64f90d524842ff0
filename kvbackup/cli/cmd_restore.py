"""kvbackup restore"""

from __future__ import annotations

from typing import Any

import click

from ..errors import ExitCode
from ..ops.overwrite import DEFAULT, POLICIES
from ..ops.restore_target import DEFAULT_WRITERS
from .common import (
    emit_json,
    get_repo_options,
    human_size,
    json_option,
    json_progress_option,
    parse_key_values,
    repo_options,
    requests_line,
    running,
    warn,
)
from .selecting import filter_options, get_filter


@click.command("restore")
@click.argument("snapshot")
@click.argument("target", type=click.Path(file_okay=False), required=False)
@click.argument("paths", nargs=-1)
@repo_options
@filter_options
@click.option(
    "--target-url",
    default=None,
    metavar="URL",
    help="Restore to an fsspec URL (s3://bucket/prefix, ...) instead of a folder; TARGET is "
    "then the first PATH.",
)
@click.option(
    "--target-option",
    "target_options",
    multiple=True,
    callback=parse_key_values,
    metavar="KEY=VALUE",
    help="An option for the source plugin serving --target-url, for fsspec a storage option "
    "(repeatable).",
)
@click.option("--include", multiple=True, help="Restore only entries matching this glob.")
@click.option("--exclude", multiple=True, help="Leave out entries matching this glob.")
@click.option(
    "--overwrite",
    type=click.Choice(POLICIES),
    default=DEFAULT,
    show_default=True,
    help="What to do with files already in TARGET: 'if-newer' keeps a file changed after "
    "the backup and replaces older ones; 'always' rolls everything back.",
)
@click.option("--delete", is_flag=True, help="Remove what TARGET holds that the snapshot does not.")
@click.option("--dry-run", "-n", is_flag=True, help="Say what would be written and deleted.")
@click.option(
    "--verify", is_flag=True, help="Read every written file back and check it against its chunks."
)
@click.option(
    "--writers",
    type=click.IntRange(0, 64),
    default=None,
    metavar="N",
    help=f"How many threads write files at once (default {DEFAULT_WRITERS}: one thread writes "
    "every file, in order; N: up to N of the fetching threads write chunks at their offsets).",
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@json_option
@json_progress_option
def command(
    snapshot: str,
    target: str | None,
    paths: tuple[str, ...],
    target_url: str | None,
    target_options: dict[str, str],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    overwrite: str,
    delete: bool,
    dry_run: bool,
    verify: bool,
    writers: int | None,
    quiet: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Restore SNAPSHOT (an id, a unique prefix, or 'latest') into TARGET.

    With PATHS, only those files or folders (and what they contain) are restored. With
    --host/--path/--tag, 'latest' is the latest snapshot that matches. Each file is written
    to a temporary name and renamed into place when complete, so a file already in TARGET is
    replaced (never written through) and stays as it was if the new one cannot be restored.

    \b
    Example:
      kvbackup restore latest /tmp/restored docs/report.txt
    """
    select = get_filter(kwargs)
    if target_url:
        if target is not None:
            paths = (target, *paths)
        if delete or dry_run:
            raise click.UsageError("--delete and --dry-run do not go with --target-url")
        target = target_url
    elif target is None:
        raise click.UsageError("give TARGET (a folder) or --target-url")
    opts = get_repo_options(kwargs)
    repo = opts.open()
    whole = not (paths or include or exclude)
    # The read lock before the name is resolved: a forget cannot remove the snapshot between.
    with repo.read_lock("restore"):
        chosen = repo.resolve_snapshot(snapshot, select=select)
        totals = (lambda: snapshot_totals(repo, chosen)) if whole else None
        with running(repo, not (quiet or as_json or dry_run), totals=totals) as progress:
            result = repo.restore(
                chosen,
                target,
                paths=paths,
                include=include,
                exclude=exclude,
                progress=progress,
                overwrite=overwrite,
                delete=delete,
                dry_run=dry_run,
                verify=verify,
                target_options=target_options,
                writers=writers,
            )
    for path, error in result.errors:
        warn(f"{path}: not restored: {error}")
    for path, reason in result.kept:
        warn(f"{path}: left as it is: {reason}")
    for message in result.warnings:
        warn(message)
    if as_json:
        emit_json(result.as_dict())
    elif dry_run:
        for action, path in result.planned:
            verb = "delete" if action == "delete" else f"write {action}"
            click.echo(f"would {verb} {path}")
        click.echo(
            f"dry run of snapshot {result.snapshot.id}: {len(result.planned)} changes, "
            f"{result.unchanged} entries already as in the snapshot"
        )
    elif not quiet:
        click.echo(
            f"restored snapshot {result.snapshot.id}: {result.files} files, "
            f"{result.dirs} dirs, {result.symlinks} symlinks, "
            f"{human_size(result.bytes)} in {result.seconds:.1f}s"
        )
        extra = [
            f"{result.unchanged} already as in the snapshot" if result.unchanged else "",
            f"{len(result.kept)} left as they were" if result.kept else "",
            f"{result.hardlinks} hard links" if result.hardlinks else "",
            f"{result.special} special files" if result.special else "",
            f"{len(result.deleted)} deleted" if result.deleted else "",
        ]
        if any(extra):
            click.echo("  " + ", ".join(e for e in extra if e))
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
