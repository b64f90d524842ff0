"""kvbackup stats"""

from __future__ import annotations

from typing import Any

import click

from .common import emit_json, get_repo_options, human_size, json_option, repo_options


@click.command("stats")
@click.argument("snapshot", required=False)
@repo_options
@json_option
def command(snapshot: str | None, as_json: bool, **kwargs: Any) -> None:
    """Sizes and counts of the repository, or of SNAPSHOT.

    Logical size is what the files weigh; unique size what is left after deduplication;
    stored size what the store holds for them (compressed, encrypted).

    \b
    Example:
      kvbackup stats latest
    """
    repo = get_repo_options(kwargs).open()
    try:
        stats = repo.stats(snapshot)
    finally:
        repo.close()
    if as_json:
        emit_json(stats.as_dict())
        return
    title = f"snapshot {stats.snapshot}" if stats.snapshot else "repository"
    click.echo(f"{title}: {stats.snapshots} snapshots, {stats.groups} groups")
    click.echo(f"  entries:      {stats.files} files, {stats.dirs} dirs, {stats.symlinks} symlinks")
    click.echo(f"  logical size: {human_size(stats.logical_bytes)}")
    click.echo(f"  unique size:  {human_size(stats.unique_bytes)} in {stats.chunks} chunks")
    click.echo(f"  stored size:  {human_size(stats.stored_bytes)} in {stats.packs} packs")
    click.echo(
        f"  deduplication {stats.dedup_ratio:.2f}x, compression {stats.compression_ratio:.2f}x"
    )
    if stats.missing_chunks:
        click.echo(f"  {stats.missing_chunks} chunks not in the index (run kvbackup verify)")
    if stats.temporary_objects:
        click.echo(
            f"  temporary:    {stats.temporary_objects} objects, "
            f"{human_size(stats.temporary_bytes)} left by interrupted writes (prune removes them)"
        )
    objects = ", ".join(f"{n} {kind}" for kind, n in stats.objects.items())
    click.echo(f"  objects:      {objects}")
