"""kvbackup find"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

import click

from ..display import display_name, json_name
from .common import emit_json, get_repo_options, human_size, json_option, repo_options
from .selecting import filter_options, get_filter
from .selection import select_snapshots


def _timestamp_ns(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """A date or date-time (ISO 8601, local time unless it says otherwise) in nanoseconds."""
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD) or date-time (YYYY-MM-DD HH:MM[:SS])"
        ) from None
    if param.name == "newest" and len(value) == 10:
        when += dt.timedelta(days=1, microseconds=-1)  # a bare date takes in the whole day
    return int(when.timestamp() * 1e9)


@click.command("find")
@click.argument("patterns", nargs=-1)
@repo_options
@click.option(
    "--snapshot",
    "-s",
    "snapshot_ids",
    multiple=True,
    metavar="ID",
    help="Search only this snapshot (repeatable; default: every complete snapshot).",
)
@filter_options
@click.option(
    "--newest",
    metavar="DATE",
    callback=_timestamp_ns,
    help="Only entries modified at or before DATE (YYYY-MM-DD[ HH:MM[:SS]]).",
)
@click.option(
    "--oldest",
    metavar="DATE",
    callback=_timestamp_ns,
    help="Only entries modified at or after DATE.",
)
@click.option("--ignore-case", "-i", is_flag=True, help="Match names without regard to case.")
@click.option(
    "--chunk",
    "chunks",
    multiple=True,
    metavar="ID",
    help="Find the files holding the chunk with this id or id prefix (repeatable).",
)
@click.option("--blob", is_flag=True, help="PATTERNS are chunk ids (as with --chunk).")
@json_option
def command(
    patterns: tuple[str, ...],
    snapshot_ids: tuple[str, ...],
    newest: int | None,
    oldest: int | None,
    ignore_case: bool,
    chunks: tuple[str, ...],
    blob: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Find files and folders by name in every snapshot (or those selected).

    A PATTERN without '/' is a glob matched against names ('*.jpg'); one with '/' is
    matched against whole paths within a snapshot ('docs/*/report.txt').

    \b
    Example:
      kvbackup find '*.pdf' --host laptop --newest 2026-01-31
    """
    chunk_ids = chunks + (patterns if blob else ())
    if not chunk_ids and not patterns:
        raise click.UsageError("give a PATTERN (or --chunk ID)")
    bad = [c for c in chunk_ids if not c or set(c.lower()) - set("0123456789abcdef")]
    if bad:
        raise click.BadParameter(f"not a chunk id (hexadecimal): {bad[0]!r}")
    select = get_filter(kwargs)
    repo = get_repo_options(kwargs).open()
    found: list[Any] = []
    try:
        # The read lock before the names are resolved: a forget cannot remove a snapshot
        # between; held while the matches stream.
        with repo.read_lock("find"):
            snaps = select_snapshots(repo, snapshot_ids, select)
            if chunk_ids:
                matches = repo.find_chunks(chunk_ids, snapshots=snaps)
            else:
                matches = repo.find(
                    patterns,
                    snapshots=snaps,
                    ignore_case=ignore_case,
                    newest_ns=newest,
                    oldest_ns=oldest,
                )
            for match in matches:
                if as_json:
                    # The exact name too (``path_base64``) when it is not UTF-8, as ls gives it.
                    found.append(match.as_dict() | json_name("path", os.fsencode(match.path)))
                    continue
                found.append(match)
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(match.mtime_ns / 1e9))
                size = human_size(match.size) if match.kind == "file" else match.kind
                # One line per match, whatever the name holds (newlines, escapes, non-UTF-8).
                click.echo(f"{match.snapshot}  {display_name(match.path)}  {size}  {when}")
                for hit in match.chunks:
                    click.echo(
                        f"    chunk {hit['id']} in pack {hit['pack']} "
                        f"at {hit['offset']}+{hit['length']}"
                    )
    finally:
        repo.close()
    if as_json:
        emit_json(found)
    if not found and not as_json:
        click.echo(f"kvbackup: nothing found in {len(snaps)} snapshots", err=True)
