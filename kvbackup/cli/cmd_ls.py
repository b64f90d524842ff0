"""kvbackup ls"""

from __future__ import annotations

import os
import stat
import time
from typing import Any

import click

from ..errors import PathNotFoundError
from .common import emit_json, get_repo_options, json_option, repo_options
from .selecting import filter_options, get_filter

_TYPE = {"file": "-", "dir": "d", "symlink": "l"}
_TYPE_BITS = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK}


@click.command("ls")
@click.argument("snapshot")
@click.argument("path", required=False)
@repo_options
@filter_options
@click.option("--long", "-l", "long_format", is_flag=True, help="Type, mode, size and mtime.")
@json_option
def command(
    snapshot: str, path: str | None, long_format: bool, as_json: bool, **kwargs: Any
) -> None:
    """List the entries of SNAPSHOT, or those under PATH.

    \b
    Example:
      kvbackup ls latest docs --long
    """

    select = get_filter(kwargs)
    repo = get_repo_options(kwargs).open()
    prefix = os.fsencode(path.strip("/")) if path else b""
    found = not prefix
    rows = []
    try:
        snap = repo.resolve_snapshot(snapshot, select=select)
        for entry in repo.entries(snap):
            if prefix and not (entry.path == prefix or entry.path.startswith(prefix + b"/")):
                continue
            found = True
            name = os.fsdecode(entry.path)
            if as_json:
                rows.append(
                    {
                        "path": name,
                        "type": entry.kind,
                        "mode": entry.mode,
                        "size": entry.size,
                        "mtime_ns": entry.mtime_ns,
                        "target": os.fsdecode(entry.target) if entry.target else None,
                    }
                )
            elif long_format:
                mode = stat.filemode(_TYPE_BITS[entry.kind] | entry.mode)
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.mtime_ns / 1e9))
                link = f" -> {os.fsdecode(entry.target)}" if entry.target else ""
                click.echo(f"{mode} {entry.size:>12} {when} {name}{link}")
            else:
                click.echo(name)
    finally:
        repo.close()
    if not found:
        raise PathNotFoundError(f"{path}: not in snapshot {snapshot}")
    if as_json:
        emit_json(rows)
