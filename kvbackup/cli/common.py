"""What every command shares: repository options, opening, output and sizes."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from ..errors import KvbackupError, RepositoryNotFoundError
from ..repository import Repository
from .progress import TerminalProgress
from .settings import password_getter, password_source, resolve_repository
from .sizes import human_size

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class RepoOptions:
    repo: str | None
    password_file: str | None
    password_command: str | None
    store_options: dict[str, str]

    def location(self) -> tuple[str, bool]:
        return resolve_repository(self.repo)

    def password(self, new: bool = False) -> Callable[[], str]:
        return password_getter(self.password_file, self.password_command, new=new)

    def password_source(self) -> str | None:
        """Where a configured password comes from (flag or environment), if anywhere."""
        return password_source(self.password_file, self.password_command)

    def open(self) -> Any:
        location, is_default = self.location()
        try:
            return Repository.open(
                location,
                password=self.password(),
                store_options=self.store_options,
                expect_encrypted=self.password_source() is not None,
            )
        except RepositoryNotFoundError:
            if is_default:
                raise RepositoryNotFoundError(
                    f"no repository yet at the default location {location} "
                    "(run `kvbackup init` or `kvbackup backup SRC`, or give --repo)"
                ) from None
            raise


def _parse_store_options(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {item!r}")
        out[key] = value
    return out


def repo_options(fn: F) -> F:
    """Add --repo, --password-file, --password-command and --store-option."""
    decorators = [
        click.option(
            "--repo",
            "-r",
            metavar="REPO",
            default=None,
            help="Repository path or URL (default: $KVBACKUP_REPO, then a local "
            "repository in the user data directory).",
        ),
        click.option(
            "--password-file",
            metavar="FILE",
            default=None,
            help="Read the password from FILE (or $KVBACKUP_PASSWORD_FILE).",
        ),
        click.option(
            "--password-command",
            metavar="CMD",
            default=None,
            help="Run CMD and use what it prints as the password.",
        ),
        click.option(
            "--store-option",
            "-o",
            "store_options",
            multiple=True,
            callback=_parse_store_options,
            metavar="KEY=VALUE",
            help="An option for the store plugin (repeatable).",
        ),
    ]
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


def get_repo_options(kwargs: dict[str, Any]) -> RepoOptions:
    return RepoOptions(
        repo=kwargs.pop("repo"),
        password_file=kwargs.pop("password_file"),
        password_command=kwargs.pop("password_command"),
        store_options=kwargs.pop("store_options"),
    )


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(fn)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def requests_line(requests: dict[str, int]) -> str:
    return (
        f"requests: GET {requests['get']}, PUT {requests['put']}, LIST {requests['list']}, "
        f"DELETE {requests['delete']}; {human_size(requests['bytes_written'])} written, "
        f"{human_size(requests['bytes_read'])} read"
    )


def warn(message: str) -> None:
    click.echo(f"kvbackup: warning: {message}", err=True)


@contextlib.contextmanager
def running(repo: Any, show_progress: bool) -> Iterator[Any]:
    """Use ``repo`` for one operation: yields a progress callback (a status line on a
    terminal, else ``None``); stops it and closes the repository afterwards."""
    progress = None
    if show_progress and sys.stderr.isatty():
        progress = TerminalProgress()
    try:
        yield progress
    finally:
        if progress:
            progress.stop()
        repo.close()


class CommandError(KvbackupError):
    """A command used wrongly in a way click cannot see."""
