"""kvbackup key list/add/remove"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..display import display_name
from ..errors import BadPasswordError
from ..format.keyslots import KDF_PROFILES
from .common import emit_json, get_repo_options, json_option, repo_options
from .settings import read_password_file


@click.group("key")
def command() -> None:
    """Manage the passwords (key slots) of an encrypted repository.

    \b
    Example:
      kvbackup key add --label laptop
    """


@command.command("list")
@repo_options
@json_option
def list_keys(as_json: bool, **kwargs: Any) -> None:
    """List the key slots (a damaged slot is listed as such).

    \b
    Example:
      kvbackup key list --json
    """
    repo = get_repo_options(kwargs).open()
    try:
        slots = repo.key_slots()
    finally:
        repo.close()
    if as_json:
        emit_json(slots)
        return
    for slot in slots:
        mark = "*" if slot.get("in_use") else " "
        if "damaged" in slot:
            click.echo(f"{mark} {slot['id']}  DAMAGED: {slot['damaged']}")
            continue
        insecure = "  INSECURE" if slot["profile"] == "insecure-fast" else ""
        click.echo(
            f"{mark} {slot['id']}  {slot['kdf']} {slot['memory_kib']} KiB t={slot['iterations']} "
            f"p={slot['lanes']} ({slot['profile']}){insecure}  "
            f"{display_name(slot['label'])}".rstrip()
        )
    if any(slot.get("in_use") for slot in slots):
        click.echo("(* the slot your password opened)")


@command.command("add")
@repo_options
@click.option(
    "--new-password-file",
    metavar="FILE",
    default=None,
    help="Read the new password from FILE (else a prompt, twice, on a terminal).",
)
@click.option("--label", default="", help="A note to tell this slot apart (stored in the clear).")
@click.option(
    "--kdf",
    "kdf_profile",
    type=click.Choice(sorted(KDF_PROFILES)),
    default=None,
    help="Key derivation of the new password (default: that of the slot your password "
    "opened); see `kvbackup init --help`.",
)
def add_key(
    new_password_file: str | None, label: str, kdf_profile: str | None, **kwargs: Any
) -> None:
    """Add a password that opens the repository.

    \b
    Example:
      kvbackup key add --label "second admin"
    """
    if new_password_file is not None:
        new = read_password_file(new_password_file)
    elif sys.stdin is not None and sys.stdin.isatty():
        new = str(click.prompt("New password", hide_input=True, confirmation_prompt=True, err=True))
        if not new:
            raise BadPasswordError("the new password is empty")
    else:
        raise BadPasswordError("no terminal to ask the new password on: give --new-password-file")
    repo = get_repo_options(kwargs).open()
    try:
        slot_id = repo.add_password(new, label=label, kdf_profile=kdf_profile)
    finally:
        repo.close()
    click.echo(f"added key slot {slot_id}")


@command.command("remove")
@click.argument("slot_id")
@repo_options
def remove_key(slot_id: str, **kwargs: Any) -> None:
    """Remove key slot SLOT_ID (never the last intact one).

    \b
    Example:
      kvbackup key remove 3f2a9c01d4e5b6a7
    """
    repo = get_repo_options(kwargs).open()
    try:
        repo.remove_key_slot(slot_id)
    finally:
        repo.close()
    click.echo(f"removed key slot {slot_id}")
