"""kvbackup mount"""

from __future__ import annotations

from typing import Any

import click

from ..display import display_name
from ..ops.mount.fuse import check_fuse, check_mountpoint, serve
from .common import emit_json, get_repo_options, json_option, repo_options, requests_line


@click.command("mount")
@click.argument("mountpoint")
@repo_options
@click.option(
    "--cache-size",
    default=64,
    show_default=True,
    metavar="MIB",
    type=click.IntRange(1),
    help="Keep up to this many MiB of recently read chunks in memory.",
)
@click.option("--debug", is_flag=True, help="Log every FUSE request (libfuse's -d).")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@json_option
def command(
    mountpoint: str, cache_size: int, debug: bool, quiet: bool, as_json: bool, **kwargs: Any
) -> None:
    """Browse the repository as a read-only folder at MOUNTPOINT (an empty folder).

    MOUNTPOINT shows snapshots/<id>/, latest (the newest snapshot) and
    hosts/<host>/<source>/<id>. Files are read on demand: only the chunks a read touches
    are fetched. Runs until Ctrl-C, SIGTERM or `fusermount3 -u MOUNTPOINT`; then prints
    the requests made (--json: as JSON).

    \b
    Example:
      kvbackup mount /mnt/backups --repo s3://bucket/backups
    """
    mfusepy = check_fuse()
    check_mountpoint(mountpoint)
    repo = get_repo_options(kwargs).open()
    shown = display_name(mountpoint)
    try:
        with repo.read_lock("mount"):  # no prune deletes what the mount may read
            tree = repo.browse(cache_bytes=cache_size * 1024 * 1024)
            if not quiet and not as_json:
                click.echo(
                    f"serving {display_name(repo.location)} at {shown} (Ctrl-C or "
                    f"`fusermount3 -u {shown}` to stop)",
                    err=True,
                )
            serve(tree, mountpoint, mfusepy, debug=debug)
        requests = repo.requests
    finally:
        repo.close()
    if as_json:
        emit_json({"mountpoint": mountpoint, "requests": requests})
    elif not quiet:
        click.echo(f"unmounted {shown}; {requests_line(requests)}", err=True)
