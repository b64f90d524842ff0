"""kvbackup plugins"""

from __future__ import annotations

from typing import Any

import click

from ..options import schema_fields
from ..registry import Registration, default_registry
from .common import emit_json, json_option


def _options(reg: Registration) -> list[str] | None:
    """The option names the plugin declares, or ``None`` if it takes free-form options."""
    return None if reg.options is None else [f.name for f in schema_fields(reg.options)]


@click.command("plugins")
@json_option
def command(as_json: bool) -> None:
    """List every registered source, store and transform, where it comes from, and the
    plugins that could not be loaded (with the reason).

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
                    "options": _options(reg),
                }
            )
    unavailable = [
        {
            "kind": "unavailable",
            "name": u.plugin,
            "plugin": u.plugin,
            "distribution": u.distribution,
            "reason": u.reason,
        }
        for u in registry.unavailable
    ]
    if as_json:
        emit_json(rows + unavailable)
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
        if row["options"]:
            extra += f" (options: {', '.join(row['options'])})"
        click.echo(
            f"{row['kind']:<10} {row['name']:<18} {row['distribution']:<22} "
            f"{row['description']}{extra}"
        )
    for item in unavailable:
        click.echo(
            f"{'unavailable':<10} {item['plugin']:<18} {item['distribution'] or '-':<22} "
            f"{item['reason']}"
        )
