"""kvbackup: deduplicated, incremental, compressed and encrypted backups into any key/value store.

Importing this package is cheap: the engine and every plugin load their heavy dependencies
only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["Repository", "__version__", "hookimpl"]

if TYPE_CHECKING:
    from .repository import Repository


def __getattr__(name: str) -> Any:
    if name == "Repository":
        from .repository import Repository

        return Repository
    raise AttributeError(name)
