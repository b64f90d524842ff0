"""kvbackup init"""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from ..errors import NotEncryptedError
from ..excludes import parse_size
from ..format.chunker import DATA_CHUNKS, ChunkerParams
from ..format.config import check_chunker
from ..format.keyslots import KDF_PROFILES
from ..repository import Repository
from .common import emit_json, get_repo_options, json_option, repo_options


@click.command("init")
@click.argument("repo_arg", metavar="[REPO]", required=False)
@repo_options
@click.option(
    "--encryption",
    default="default",
    show_default=True,
    help="Cipher (chacha20-poly1305, aes-256-gcm, ...) or 'none'.",
)
@click.option(
    "--compression", default="default", show_default=True, help="Compression (zstd) or 'none'."
)
@click.option("--compression-level", type=int, default=None, help="Compression level.")
@click.option(
    "--kdf",
    "kdf_profile",
    type=click.Choice(sorted(KDF_PROFILES)),
    default="standard",
    show_default=True,
    help="Key derivation of the password: 'standard' (Argon2id, 64 MiB, t=3), or "
    "'insecure-fast' (1 MiB, t=1: cheap to guess; for tests and throwaway repositories "
    "only; recorded in the key slot).",
)
@click.option(
    "--segment-size",
    metavar="SIZE",
    default=None,
    help="Cut every file at each multiple of SIZE (e.g. 64M; default 256M), so that "
    "'backup --dask' can read ranges of one large file on several workers; 'none' for no "
    "forced cuts (such files are then read whole by one worker).",
)
@json_option
def command(
    repo_arg: str | None,
    encryption: str,
    compression: str,
    compression_level: int | None,
    kdf_profile: str,
    segment_size: str | None,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Create a repository at REPO (a path or URL).

    \b
    Example:
      kvbackup init --repo s3://bucket/backups --encryption aes-256-gcm
    """

    opts = get_repo_options(kwargs)
    opts.repo = repo_arg if repo_arg is not None else opts.repo
    location, _ = opts.location()
    source = opts.password_source()
    if encryption == "none" and source:
        raise NotEncryptedError(
            f"--encryption none, but a password is configured ({source}): unset it, or "
            "every later command would refuse the unencrypted repository"
        )
    chunker = _chunker(segment_size)
    repo = Repository.init(
        location,
        password=opts.password(new=True),
        encryption=encryption,
        compression=compression,
        compression_level=compression_level,
        store_options=opts.store_options,
        kdf_profile=kdf_profile,
        chunker=chunker,
    )
    transforms = [t["name"] for t in repo.config.transforms]
    info = {
        "repository": location,
        "id": repo.config.id,
        "encryption": repo.config.encryption or "none",
        "transforms": transforms,
        "segment_size": repo.config.chunker.segment_size,
    }
    repo.close()
    if as_json:
        emit_json(info)
    else:
        click.echo(
            f"created repository {repo.config.id[:8]} at {location} "
            f"(encryption: {info['encryption']}, transforms: {', '.join(transforms) or 'none'})"
        )


def _chunker(segment_size: str | None) -> ChunkerParams | None:
    """The default chunker with ``--segment-size`` applied (``None``: the default's)."""
    if segment_size is None:
        return None
    if segment_size.strip().lower() == "none":
        return dataclasses.replace(DATA_CHUNKS, segment_size=None)
    try:
        size = parse_size(segment_size)
        params = dataclasses.replace(DATA_CHUNKS, segment_size=size)
        check_chunker(params)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--segment-size") from None
    return params
