"""Options that choose snapshots: ``--host``, ``--tag``, ``--path``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..core.selection import SnapshotFilter

F = TypeVar("F", bound=Callable[..., Any])


def filter_options(fn: F) -> F:
    """Add --host, --tag and --path (each repeatable)."""
    decorators = [
        click.option(
            "--host", "hosts", multiple=True, metavar="HOST", help="Only snapshots of HOST."
        ),
        click.option(
            "--tag",
            "tags",
            multiple=True,
            metavar="T[,T...]",
            help="Only snapshots carrying all these tags (repeat for any of several sets).",
        ),
        click.option(
            "--path",
            "filter_paths",
            multiple=True,
            metavar="SOURCE",
            help="Only snapshots of SOURCE.",
        ),
    ]
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


def get_filter(kwargs: dict[str, Any]) -> SnapshotFilter:
    return SnapshotFilter.of(kwargs.pop("hosts"), kwargs.pop("tags"), kwargs.pop("filter_paths"))
