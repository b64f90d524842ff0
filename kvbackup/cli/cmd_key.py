"""kvbackup key list/add/remove"""

from __future__ import annotations

from typing import Any

import click

from ..settings import password_getter
from .common import emit_json, get_repo_options, json_option, repo_options


@click.group("key")
def command() -> None:
    """Manage the passwords (key slots) of an encrypted repository."""


@command.command("list")
@repo_options
@json_option
def list_keys(as_json: bool, **kwargs: Any) -> None:
    """List the key slots."""
    repo = get_repo_options(kwargs).open()
    try:
        slots = repo.key_slots()
    finally:
        repo.close()
    if as_json:
        emit_json(slots)
        return
    for slot in slots:
        click.echo(
            f"{slot['id']}  {slot['kdf']} {slot['memory_kib']} KiB x{slot['iterations']}"
            f"  {slot['label']}"
        )


@command.command("add")
@repo_options
@click.option(
    "--new-password-file",
    metavar="FILE",
    default=None,
    help="Read the new password from FILE (else a prompt).",
)
@click.option("--label", default="", help="A note to tell this slot apart.")
def add_key(new_password_file: str | None, label: str, **kwargs: Any) -> None:
    """Add a password that opens the repository."""
    repo = get_repo_options(kwargs).open()
    try:
        new = password_getter(new_password_file, None, new=True)
        if new_password_file is None:
            import click as _click

            value = _click.prompt(
                "New password", hide_input=True, confirmation_prompt=True, err=True
            )
        else:
            value = new()
        slot_id = repo.add_password(value, label=label)
    finally:
        repo.close()
    click.echo(f"added key slot {slot_id}")


@command.command("remove")
@click.argument("slot_id")
@repo_options
def remove_key(slot_id: str, **kwargs: Any) -> None:
    """Remove key slot SLOT_ID (never the last one)."""
    repo = get_repo_options(kwargs).open()
    try:
        repo.remove_key_slot(slot_id)
    finally:
        repo.close()
    click.echo(f"removed key slot {slot_id}")
