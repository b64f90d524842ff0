"""kvbackup copy"""

from __future__ import annotations

import os
from typing import Any

import click

from ..repository import Repository
from .common import (
    emit_json,
    get_repo_options,
    human_size,
    json_option,
    json_progress_option,
    parse_store_options,
    repo_options,
    requests_line,
    running,
)
from .selecting import filter_options, get_filter
from .selection import select_snapshots
from .settings import FROM_PASSWORD_ENVS, password_getter, password_source

FROM_REPO_ENV = "KVBACKUP_FROM_REPO"


@click.command("copy")
@click.argument("snapshot_ids", nargs=-1, metavar="[SNAPSHOT]...")
@click.option(
    "--from-repo", metavar="REPO", help=f"The repository to copy from (or ${FROM_REPO_ENV})."
)
@click.option(
    "--from-password-file",
    metavar="FILE",
    help="Read the source repository's password from FILE (or $KVBACKUP_FROM_PASSWORD_FILE).",
)
@click.option(
    "--from-password-command",
    metavar="CMD",
    help="Run CMD for the source repository's password (or $KVBACKUP_FROM_PASSWORD_COMMAND; "
    "$KVBACKUP_FROM_PASSWORD gives it directly).",
)
@click.option(
    "--from-store-option",
    "from_store_options",
    multiple=True,
    metavar="KEY=VALUE",
    callback=parse_store_options,
    help="An option for the source's store plugin (repeatable).",
)
@repo_options
@filter_options
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@json_option
@json_progress_option
def command(
    snapshot_ids: tuple[str, ...],
    from_repo: str | None,
    from_password_file: str | None,
    from_password_command: str | None,
    from_store_options: dict[str, str],
    quiet: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Copy snapshots (default: all) from --from-repo into --repo.

    The repositories may use different stores, passwords and ciphers: chunks are read,
    checked, encrypted again and deduplicated against what the target already holds.
    Snapshots the target has already are skipped; an interrupted copy resumes where it
    stopped.

    \b
    Example:
      kvbackup copy --from-repo /srv/backups --repo s3://offsite/backups
    """
    select = get_filter(kwargs)
    from_repo = from_repo or os.environ.get(FROM_REPO_ENV)
    if not from_repo:
        raise click.UsageError(f"give --from-repo (or set {FROM_REPO_ENV})")
    source = Repository.open(
        from_repo,
        password=password_getter(
            from_password_file,
            from_password_command,
            env=FROM_PASSWORD_ENVS,
            what="Password of the repository to copy from",
        ),
        store_options=from_store_options,
        expect_encrypted=password_source(
            from_password_file, from_password_command, env=FROM_PASSWORD_ENVS
        )
        is not None,
    )
    try:
        target = get_repo_options(kwargs).open()
        # The source's read lock before the names are resolved: a forget cannot remove a
        # snapshot between.
        with source.read_lock("copy"), running(target, not (quiet or as_json)) as progress:
            snaps = select_snapshots(source, snapshot_ids, select)
            result = target.copy_from(source, snaps, progress=progress)
    finally:
        source.close()
    if as_json:
        emit_json(result.as_dict())
    elif not quiet:
        for old, new in result.copied:
            click.echo(f"snapshot {old} copied as {new}")
        if result.skipped:
            click.echo(f"{len(result.skipped)} snapshots already in the target, skipped")
        s = result.stats
        click.echo(
            f"  {result.files} files, {human_size(result.bytes)}; new: {s.chunks_new} chunks, "
            f"{human_size(s.bytes_new)} (stored {human_size(s.bytes_stored)}); already in the "
            f"target: {s.chunks_deduplicated} chunks, {human_size(s.bytes_deduplicated)}"
        )
        click.echo(f"  from: {requests_line(result.requests_from)}")
        click.echo(f"  to:   {requests_line(result.requests_to)}")
        click.echo(f"  took {result.seconds:.1f}s")
