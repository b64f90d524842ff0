"""Built-in source plugin: a directory on the local file system."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kvbackup import hookimpl
from kvbackup.options import option

if TYPE_CHECKING:
    from kvbackup.hookspecs import RegisterSource


@dataclass(frozen=True)
class DirectoryOptions:
    """``--source-option`` values of the directory source."""

    one_file_system: bool = option(False, help="stay on the file system of the root")


def _accepts(spec: Any) -> bool:
    return isinstance(spec, (str, bytes, os.PathLike)) and os.path.isdir(spec)


def _factory(spec: Any, options: DirectoryOptions) -> Any:
    from .source import DirectorySource

    return DirectorySource(spec, one_file_system=options.one_file_system)


@hookimpl
def kvbackup_register_sources(register: RegisterSource) -> None:
    register(
        "directory",
        _factory,
        accepts=_accepts,
        options=DirectoryOptions,
        description="a local directory tree (files, directories, symlinks, modes, mtimes)",
    )
