"""Built-in source plugin: a directory on the local file system."""

from __future__ import annotations

import os
from typing import Any

from kvbackup import hookimpl


def _accepts(spec: Any) -> bool:
    return isinstance(spec, (str, bytes, os.PathLike)) and os.path.isdir(spec)


def _factory(spec: Any, options: dict[str, str]) -> Any:
    from .source import DirectorySource

    return DirectorySource(spec, **options)


@hookimpl
def kvbackup_register_sources(register: Any) -> None:
    register(
        "directory",
        _factory,
        accepts=_accepts,
        description="a local directory tree (files, directories, symlinks, modes, mtimes)",
    )
