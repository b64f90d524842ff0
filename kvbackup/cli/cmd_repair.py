"""kvbackup repair index | snapshots"""

from __future__ import annotations

from typing import Any

import click

from ..ops.repair import RepairResult
from .common import emit_json, get_repo_options, json_option, repo_options

_DRY_RUN = click.option(
    "--dry-run", "-n", is_flag=True, help="Say what would be done; change nothing."
)


@click.group("repair")
def command() -> None:
    """Repair what verify or a warning reported damaged.

    Nothing is deleted: an object set aside is copied to quarantine/<its key> first.

    \b
    Example:
      kvbackup repair index --dry-run
    """


def _print(result: RepairResult, as_json: bool) -> None:
    if as_json:
        emit_json(result.as_dict())
        return
    for line in describe(result):
        click.echo(line)


@command.command("index")
@click.option(
    "--group", "groups", multiple=True, metavar="GID", help="Only this group (repeatable)."
)
@_DRY_RUN
@repo_options
@json_option
def index_command(groups: tuple[str, ...], dry_run: bool, as_json: bool, **kwargs: Any) -> None:
    """Rebuild the index of every group (or of GID) from pack trailers.

    Packs that no readable index fragment names (a lost or damaged fragment, an interrupted
    backup) are read from their trailers and indexed in a new fragment; unreadable
    fragments are set aside.

    \b
    Example:
      kvbackup repair index --group 0c5e2f9a1b3d4e6f
    """
    repo = get_repo_options(kwargs).open()
    try:
        result = repo.repair_index(groups, dry_run=dry_run)
    finally:
        repo.close()
    _print(result, as_json)


@command.command("snapshots")
@_DRY_RUN
@repo_options
@json_option
def snapshots_command(dry_run: bool, as_json: bool, **kwargs: Any) -> None:
    """Set aside every snapshot record that cannot be read, and name each.

    A snapshot whose final record is set aside but whose .open record is sound stays, as
    an incomplete snapshot: the next backup of its source resumes it.

    \b
    Example:
      kvbackup repair snapshots --json
    """
    repo = get_repo_options(kwargs).open()
    try:
        result = repo.repair_snapshots(dry_run=dry_run)
    finally:
        repo.close()
    _print(result, as_json)


def describe(result: RepairResult) -> list[str]:
    """Lines a person reads."""
    verb = "would " if result.dry_run else ""
    lines = []
    for g in result.groups:
        line = f"group {g.group}: {g.fragments} index fragments"
        if g.packs_indexed:
            line += (
                f"; {verb}index {g.packs_indexed} packs ({g.chunks_indexed} chunks) from their "
                "trailers" + (f" in {g.new_fragment}" if g.new_fragment else "")
            )
        lines.append(line)
        lines.extend(f"  unreadable trailer, not indexed: {key}" for key in g.unreadable_packs)
        lines.extend(f"  {verb}set aside {s.key} -> {s.moved_to}: {s.reason}" for s in g.set_aside)
    if not result.groups:
        lines.append(f"checked {result.snapshots_checked} snapshot records")
    lines.extend(f"{verb}set aside {s.key} -> {s.moved_to}: {s.reason}" for s in result.set_aside)
    if not result.changed:
        lines.append("nothing to repair")
    return lines
