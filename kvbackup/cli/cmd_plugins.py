"""kvbackup plugins"""

from __future__ import annotations

from typing import Any

import click

from ..registry import default_registry
from .common import emit_json, json_option


@click.command("plugins")
@json_option
def command(as_json: bool) -> None:
    """List every registered source, store and transform, and where it comes from.

    \b
    Example:
      kvbackup plugins --json
    """
    registry = default_registry()
    rows: list[dict[str, Any]] = []
    for kind in ("source", "store", "transform"):
        for reg in registry.all(kind):
            rows.append(
                {
                    "kind": kind,
                    "name": reg.name,
                    "plugin": reg.plugin,
                    "distribution": reg.distribution or "(not installed as a distribution)",
                    "schemes": list(reg.schemes),
                    "role": reg.role,
                    "default": reg.default,
                    "description": reg.description,
                }
            )
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        extra = ""
        if row["schemes"]:
            extra = (
                " ["
                + ", ".join(
                    s + "://" if s not in ("", "*") else ("path" if s == "" else "any URL")
                    for s in row["schemes"]
                )
                + "]"
            )
        if row["role"]:
            extra = f" [{row['role']}{', default' if row['default'] else ''}]"
        click.echo(
            f"{row['kind']:<10} {row['name']:<18} {row['distribution']:<22} "
            f"{row['description']}{extra}"
        )
