"""kvbackup ls"""

from __future__ import annotations

import os
import stat
import time
from typing import Any

import click

from ..display import display_name, json_name
from ..errors import PathNotFoundError
from ..sources import Entry
from .common import emit_json, get_repo_options, json_option, repo_options
from .selecting import filter_options, get_filter

_TYPE = {"file": "-", "dir": "d", "symlink": "l", "fifo": "p", "chardev": "c", "blockdev": "b"}
_TYPE_BITS = {
    "file": stat.S_IFREG,
    "dir": stat.S_IFDIR,
    "symlink": stat.S_IFLNK,
    "fifo": stat.S_IFIFO,
    "chardev": stat.S_IFCHR,
    "blockdev": stat.S_IFBLK,
}


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
    rows: list[dict[str, Any]] = []
    try:
        # The read lock before the name is resolved: a forget cannot remove the snapshot
        # between; held while the entries stream.
        with repo.read_lock("ls"):
            snap = repo.resolve_snapshot(snapshot, select=select)
            for entry in repo.entries(snap):
                if prefix and not (entry.path == prefix or entry.path.startswith(prefix + b"/")):
                    continue
                found = True
                _show(entry, as_json, long_format, rows)
    finally:
        repo.close()
    if not found:
        raise PathNotFoundError(f"{display_name(path or '')}: not in snapshot {snapshot}")
    if as_json:
        emit_json(rows)


def _show(entry: Entry, as_json: bool, long_format: bool, rows: list[dict[str, Any]]) -> None:
    """Print ``entry`` (or, for ``--json``, add its row to ``rows``)."""
    name = display_name(entry.path)
    if as_json:
        rows.append(
            {
                **json_name("path", entry.path),
                "type": entry.kind,
                "mode": entry.mode,
                "size": entry.size,
                "mtime_ns": entry.mtime_ns,
                **json_name("target", entry.target),
            }
        )
    elif long_format:
        mode = stat.filemode(_TYPE_BITS[entry.kind] | entry.mode)
        link = f" -> {display_name(entry.target)}" if entry.target else ""
        click.echo(f"{mode} {entry.size:>12} {_when(entry.mtime_ns)} {name}{link}")
    else:
        click.echo(name)


def _when(mtime_ns: int) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(mtime_ns / 1e9))
    except (OverflowError, OSError, ValueError):  # a time no calendar holds
        return f"@{mtime_ns // 10**9}"
