"""kvbackup backup"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import click

from ..display import display_name
from ..errors import ExitCode, RepositoryNotFoundError
from ..ops.distbackup import dask_client
from ..repository import Repository
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
from .sourceopts import exclude_options, exclude_rules, source_selection_options, source_spec


@click.command("backup")
@click.argument("sources", nargs=-1)
@repo_options
@click.option("--full", is_flag=True, help="Start a new group: upload everything afresh.")
@click.option("--rehash", is_flag=True, help="Read every file, even those that look unchanged.")
@click.option("--source-type", default=None, help="Source plugin to use (default: by SOURCE).")
@click.option(
    "--source-option",
    "source_options",
    multiple=True,
    callback=parse_key_values,
    metavar="KEY=VALUE",
    help="An option for the source plugin (repeatable; see `kvbackup plugins`).",
)
@source_selection_options
@exclude_options
@click.option("--dry-run", "-n", is_flag=True, help="Say what would be read; store nothing.")
@click.option(
    "--compression",
    default=None,
    help="Override compression for this run ('none', 'zstd', 'zstd:LEVEL').",
)
@click.option("--tag", "tags", multiple=True, help="Tag the snapshot (repeatable).")
@click.option(
    "--dask",
    "dask_address",
    default=None,
    metavar="ADDRESS",
    help="Spread the work over a Dask cluster: a scheduler address (tls://host:8786), or "
    "local[:N] for N local worker processes. See docs/distributed.md.",
)
@click.option(
    "--dask-trusted-network",
    is_flag=True,
    help="Allow a plain tcp:// scheduler or workers beyond loopback (the key crosses it).",
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@json_option
@json_progress_option
def command(
    sources: tuple[str, ...],
    full: bool,
    rehash: bool,
    source_type: str | None,
    source_options: dict[str, str],
    dry_run: bool,
    compression: str | None,
    tags: tuple[str, ...],
    dask_address: str | None,
    dask_trusted_network: bool,
    quiet: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Back SOURCE... up: folders and files (each kept under its own path when there are
    several), '-' for standard input, the output of a command (--stdin-from-command -- CMD
    ARGS), or anything a source plugin takes (--source-type). Incremental unless --full;
    exits 3 if some files were unreadable or changed while read.

    \b
    Example:
      kvbackup backup ~/Documents --repo /mnt/usb/backups --tag daily
      kvbackup backup ~/src ~/.bashrc --exclude-caches --exclude '*.o'
    """

    if not (sources or kwargs["files_from"] or kwargs["files_from_verbatim"]):
        run_profile_sources(click.get_current_context())
        return
    if dask_address and dry_run:
        raise click.UsageError("--dry-run does not go with --dask (a dry run reads nothing)")
    spec, source_type, source_options = source_spec(sources, source_type, source_options, kwargs)
    excludes = exclude_rules(kwargs)
    opts = get_repo_options(kwargs)
    try:
        repo = opts.open()
    except RepositoryNotFoundError:
        location, is_default = opts.location()
        if not is_default:
            raise
        repo = Repository.init(
            location, password=opts.password(new=True), store_options=opts.store_options
        )
        if not quiet:
            click.echo(f"created the default repository at {location}", err=True)
    cluster: Any = contextlib.nullcontext()
    if dask_address:
        cluster = dask_client(dask_address, dask_trusted_network)
    scan = spec if isinstance(spec, str) and os.path.isdir(spec) and not dry_run else None
    show = not (quiet or as_json or dry_run)
    with cluster as executor, running(repo, show, scan=scan) as progress:
        result = repo.backup(
            spec,
            full=full,
            rehash=rehash,
            source_type=source_type,
            source_options=source_options,
            compression=compression,
            progress=progress,
            tags=tags,
            executor=executor,
            trusted_network=dask_trusted_network,
            excludes=excludes,
            dry_run=dry_run,
        )
    for path, error in result.skipped:
        warn(f"{display_name(path)}: skipped: {error}")
    for message in result.warnings:
        warn(message)
    if as_json:
        emit_json(result.as_dict())
    elif dry_run:
        s = result.stats
        for path in result.would_read:
            click.echo(f"would read {display_name(path)}")
        click.echo(
            f"dry run: {s.files} files ({s.files_read} to read, {human_size(s.bytes_read)}; "
            f"{s.files_unchanged} unchanged), {s.dirs} dirs, {s.symlinks} symlinks, "
            f"{s.excluded} excluded; nothing stored"
        )
    elif not quiet:
        for message in result.messages:
            click.echo(message)
        s, snap = result.stats, result.snapshot
        if snap.full:
            kind = "full backup, new group"
        elif snap.parent:
            kind = f"incremental on {snap.parent}, group"
        else:
            kind = f"resuming {snap.resumes}, group"
        click.echo(f"snapshot {snap.id} saved ({kind} {snap.group})")
        click.echo(
            f"  files: {s.files} ({s.files_read} read, {s.files_unchanged} unchanged), "
            f"{s.dirs} dirs, {s.symlinks} symlinks, {human_size(s.bytes)}"
            + (f", {s.excluded} excluded" if s.excluded else "")
        )
        click.echo(
            f"  new: {s.chunks_new} chunks, {human_size(s.bytes_new)} "
            f"(stored {human_size(s.bytes_stored)}); already stored: "
            f"{s.chunks_deduplicated} chunks, {human_size(s.bytes_deduplicated)}"
        )
        click.echo(f"  {requests_line(result.requests)}")
        if result.distributed is not None:
            _echo_workers(result.distributed)
        click.echo(f"  took {result.seconds:.1f}s")
    if result.partial:
        if not as_json:
            warn(f"{len(result.skipped)} entries could not be read; the snapshot lists them")
        raise SystemExit(ExitCode.PARTIAL)


def run_profile_sources(ctx: click.Context) -> None:
    """Back up each source of the profile (``kvbackup -p NAME backup``), one after the
    other; exit with the worst status."""
    sources = (ctx.default_map or {}).get("sources") or []
    if not sources:
        raise click.UsageError("give SOURCE, or a profile (-p NAME) that lists sources")
    worst = 0
    for one in sources:
        try:
            ctx.invoke(command, **{**ctx.params, "sources": (one,)})
        except SystemExit as exc:
            worst = max(worst, int(exc.code or 0))
    if worst:
        raise SystemExit(worst)


def _echo_workers(info: dict[str, Any]) -> None:
    split = info.get("files_split", 0)
    click.echo(
        f"  {info['shards']} shards on {len(info['workers'])} workers; "
        + (f"{split} large files read in {info['ranges']} ranges; " if split else "")
        + f"{info['chunks_duplicated']} chunks stored twice by workers at once "
        f"({human_size(info['bytes_duplicated'])})"
    )
    for address, w in sorted(info["workers"].items()):
        click.echo(
            f"    {address}: {w['shards']} shards, {w['files_read']} files, "
            f"{human_size(w['bytes_read'])} read, {w['chunks_new']} new chunks, "
            + (requests_line(w["requests"]) if w["requests"] else "requests: not reported")
        )
