"""Built-in source plugins: a directory on the local file system, and several local paths."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kvbackup import hookimpl
from kvbackup.errors import SourceError
from kvbackup.options import option

if TYPE_CHECKING:
    from kvbackup.hookspecs import RegisterSource


@dataclass(frozen=True)
class DirectoryOptions:
    """``--source-option`` values of the directory and paths sources."""

    one_file_system: bool = option(False, help="stay on the file system of each root")


def _is_path(spec: Any) -> bool:
    return isinstance(spec, (str, bytes, os.PathLike)) and "://" not in os.fsdecode(spec)


def _accepts(spec: Any) -> bool:
    return _is_path(spec) and os.path.isdir(spec)


def _factory(spec: Any, options: DirectoryOptions) -> Any:
    from .source import DirectorySource

    if not _is_path(spec):
        raise SourceError("the directory source takes one folder (several paths: 'paths')")
    return DirectorySource(spec, one_file_system=options.one_file_system)


def _accepts_paths(spec: Any) -> bool:
    if isinstance(spec, (list, tuple)):
        return bool(spec) and all(_is_path(p) for p in spec)
    return _is_path(spec)


def _paths_factory(spec: Any, options: DirectoryOptions) -> Any:
    from .paths import PathsSource

    paths = [spec] if _is_path(spec) else spec
    return PathsSource(paths, one_file_system=options.one_file_system)


@hookimpl
def kvbackup_register_sources(register: RegisterSource) -> None:
    register(
        "directory",
        _factory,
        accepts=_accepts,
        options=DirectoryOptions,
        description="a local directory tree (files, directories, symlinks, special files, "
        "modes, mtimes, owners, xattrs, hard links, holes)",
    )
    register(
        "paths",
        _paths_factory,
        accepts=_accepts_paths,
        options=DirectoryOptions,
        priority=-10,  # the fallback for paths: any other source that accepts one wins
        description="local folders and files, each kept under its absolute path",
    )
