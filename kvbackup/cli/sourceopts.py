"""Options of ``kvbackup backup`` that choose what is read: file lists, standard input, a
command's output, and the exclude rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..excludes import ExcludeRules, parse_size, read_pattern_file

F = TypeVar("F", bound=Callable[..., Any])


def _stack(fn: F, decorators: list[Callable[[F], F]]) -> F:
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


def source_selection_options(fn: F) -> F:
    """--files-from, --files-from-verbatim, --stdin-name, --stdin-from-command."""
    return _stack(
        fn,
        [
            click.option(
                "--files-from",
                multiple=True,
                metavar="FILE",
                type=click.Path(dir_okay=False, allow_dash=True),
                help="Back up the paths listed in FILE, one a line ('#' comments and blank "
                "lines ignored; repeatable).",
            ),
            click.option(
                "--files-from-verbatim",
                multiple=True,
                metavar="FILE",
                type=click.Path(dir_okay=False, allow_dash=True),
                help="Back up the paths listed in FILE, one a line, taken exactly as written.",
            ),
            click.option(
                "--stdin-name",
                default=None,
                metavar="NAME",
                help="The file name to store standard input (SOURCE '-') or a command's output "
                "under (default 'stdin').",
            ),
            click.option(
                "--stdin-from-command",
                is_flag=True,
                help="Run the command given after '--' and back up what it prints; a non-zero "
                "exit fails the backup.",
            ),
        ],
    )


def exclude_options(fn: F) -> F:
    """The exclude rules (see :mod:`kvbackup.excludes`)."""
    return _stack(
        fn,
        [
            click.option(
                "--exclude",
                "-e",
                "exclude",
                multiple=True,
                metavar="PATTERN",
                help="Leave out what matches PATTERN (gitignore syntax, anchored at the source "
                "root; '!PATTERN' takes back; repeatable).",
            ),
            click.option(
                "--iexclude",
                multiple=True,
                metavar="PATTERN",
                help="Like --exclude, ignoring case.",
            ),
            click.option(
                "--exclude-file",
                multiple=True,
                metavar="FILE",
                type=click.Path(exists=True, dir_okay=False),
                help="Read exclude patterns from FILE (a .gitignore-style file; repeatable).",
            ),
            click.option(
                "--exclude-caches",
                is_flag=True,
                help="Leave out folders holding a CACHEDIR.TAG with the standard signature.",
            ),
            click.option(
                "--exclude-if-present",
                multiple=True,
                metavar="NAME",
                help="Leave out folders that hold a file called NAME (repeatable).",
            ),
            click.option(
                "--exclude-larger-than",
                default=None,
                metavar="SIZE",
                help="Leave out files larger than SIZE (e.g. 500K, 10M, 2G).",
            ),
            click.option(
                "--one-file-system",
                "-x",
                is_flag=True,
                help="Do not cross into other file systems (mount points are kept, empty).",
            ),
        ],
    )


def exclude_rules(kwargs: dict[str, Any]) -> ExcludeRules | None:
    """The rules the exclude options give (``None`` if none); pops those options."""
    patterns: list[str] = []
    for path in kwargs.pop("exclude_file"):
        patterns += read_pattern_file(path)
    patterns += kwargs.pop("exclude")
    larger = kwargs.pop("exclude_larger_than")
    try:
        larger_than = parse_size(larger) if larger is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--exclude-larger-than") from None
    rules = ExcludeRules(
        patterns=patterns,
        ipatterns=list(kwargs.pop("iexclude")),
        exclude_caches=kwargs.pop("exclude_caches"),
        if_present=list(kwargs.pop("exclude_if_present")),
        larger_than=larger_than,
        one_file_system=kwargs.pop("one_file_system"),
    )
    return None if rules.empty else rules


def _read_list(path: str, verbatim: bool) -> list[str]:
    stream = click.open_file(path, "rb")
    with stream:
        data = stream.read()
    if verbatim:
        return [line.decode("utf-8", "surrogateescape") for line in data.split(b"\n") if line]
    lines = (line.strip().decode("utf-8", "surrogateescape") for line in data.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def source_spec(
    sources: tuple[str, ...],
    source_type: str | None,
    options: dict[str, str],
    kwargs: dict[str, Any],
) -> tuple[Any, str | None, dict[str, str]]:
    """What to hand :meth:`Repository.backup` as source, source type and options, from the
    command line; pops the source selection options."""
    listed: list[str] = []
    for path in kwargs.pop("files_from"):
        listed += _read_list(path, verbatim=False)
    for path in kwargs.pop("files_from_verbatim"):
        listed += _read_list(path, verbatim=True)
    stdin_name = kwargs.pop("stdin_name")
    if kwargs.pop("stdin_from_command"):
        if not sources:
            raise click.UsageError("--stdin-from-command needs a command after '--'")
        if stdin_name:
            options = {**options, "name": stdin_name}
        return list(sources), source_type or "command", options
    if sources == ("-",) and not listed:
        if stdin_name:
            options = {**options, "name": stdin_name}
        return "-", source_type or "stdin", options
    if stdin_name:
        raise click.UsageError("--stdin-name goes with SOURCE '-' or --stdin-from-command")
    paths = [*sources, *listed]
    if not paths:
        raise click.UsageError("nothing to back up: give SOURCE, --files-from or '-'")
    if "-" in paths:
        raise click.UsageError("'-' (standard input) cannot be backed up together with paths")
    if len(paths) == 1 and not listed:
        return paths[0], source_type, options
    return paths, source_type or "paths", options
