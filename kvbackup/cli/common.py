"""What every command shares: repository options, opening, output and sizes."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from ..display import json_safe
from ..errors import KvbackupError, RepositoryNotFoundError
from ..repository import Repository
from .profiles import Profile
from .progress import JsonProgress, ProgressReporter, TerminalProgress
from .settings import password_getter, password_source, resolve_repository
from .sizes import human_size

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class RepoOptions:
    repo: str | None
    password_file: str | None
    password_command: str | None
    store_options: dict[str, str]
    #: The profile chosen with ``--profile``: it overrides the environment, flags override it.
    profile: Profile | None = None
    flag_store_options: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False

    def location(self) -> tuple[str, bool]:
        if not self.repo and self.profile and self.profile.get("repository"):
            return str(self.profile.get("repository")), False
        return resolve_repository(self.repo)

    def password(self, new: bool = False) -> Callable[[], str]:
        if not (self.password_file or self.password_command) and self.profile:
            from_profile = self.profile.password_getter()
            if from_profile:
                return from_profile[0]
        return password_getter(self.password_file, self.password_command, new=new)

    def password_source(self) -> str | None:
        """Where a configured password comes from (flag, profile or environment), if anywhere."""
        if not (self.password_file or self.password_command) and self.profile:
            from_profile = self.profile.password_getter()
            if from_profile:
                return self.profile.origin(from_profile[1])
        return password_source(self.password_file, self.password_command)

    def open(self) -> Any:
        location, is_default = self.location()
        try:
            repo = Repository.open(
                location,
                password=self.password(),
                store_options=self.store_options,
                expect_encrypted=self.password_source() is not None,
                cache=False if self.no_cache else None,
            )
        except RepositoryNotFoundError:
            if is_default:
                raise RepositoryNotFoundError(
                    f"no repository yet at the default location {location} "
                    "(run `kvbackup init` or `kvbackup backup SRC`, or give --repo)"
                ) from None
            raise
        repo.damage.listeners.append(warn)  # damage worked around is reported, not hidden
        return repo


def parse_key_values(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    """``("a=1", "b=2")`` -> ``{"a": "1", "b": "2"}`` (a click callback)."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {item!r}")
        out[key] = value
    return out


parse_store_options = parse_key_values  # the name cmd_copy uses


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
            callback=parse_key_values,
            metavar="KEY=VALUE",
            help="An option for the store plugin (repeatable).",
        ),
        click.option(
            "--no-cache",
            is_flag=True,
            help="Use no local cache: read metadata from the store (or set "
            "$KVBACKUP_NO_CACHE=1); verify also reads every pack again.",
        ),
    ]
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


def get_repo_options(kwargs: dict[str, Any]) -> RepoOptions:
    """The repository options of a command, with the profile (if any) filled in."""
    profile = current_profile()
    flag_options = kwargs.pop("store_options")
    store_options = dict(profile.get("store_options") or {}) if profile else {}
    store_options = {k: str(v) for k, v in store_options.items()}
    store_options.update(flag_options)
    return RepoOptions(
        repo=kwargs.pop("repo"),
        password_file=kwargs.pop("password_file"),
        password_command=kwargs.pop("password_command"),
        store_options=store_options,
        profile=profile,
        flag_store_options=flag_options,
        no_cache=kwargs.pop("no_cache", False),
    )


def current_profile() -> Profile | None:
    """The profile given to ``kvbackup --profile NAME``, if any."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx else None
    return getattr(obj, "profile", None)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(fn)


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON, valid UTF-8: a name that is not UTF-8 is shown escaped
    (commands that must give exact names add ``*_base64`` fields; see ``docs/security.md``)."""
    click.echo(json.dumps(json_safe(data), indent=2, sort_keys=True, default=str))


def requests_line(requests: dict[str, int]) -> str:
    return (
        f"requests: GET {requests['get']}, PUT {requests['put']}, LIST {requests['list']}, "
        f"DELETE {requests['delete']}; {human_size(requests['bytes_written'])} written, "
        f"{human_size(requests['bytes_read'])} read"
    )


def warn(message: str) -> None:
    click.echo(f"kvbackup: warning: {message}", err=True)


JSON_PROGRESS = "kvbackup.json_progress"


def _set_json_progress(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[JSON_PROGRESS] = True


def json_progress_option(fn: F) -> F:
    """Add --json-progress: progress events as JSON lines on stderr (see :func:`running`)."""
    return click.option(
        "--json-progress",
        is_flag=True,
        expose_value=False,
        callback=_set_json_progress,
        help="Stream progress events to stderr as JSON lines.",
    )(fn)


@contextlib.contextmanager
def running(
    repo: Any,
    show_progress: bool,
    scan: str | None = None,
    totals: Callable[[], tuple[int, int] | None] | None = None,
) -> Iterator[Any]:
    """Use ``repo`` for one operation: yields a progress callback (JSON lines with
    --json-progress; a progress bar on a terminal, unless ``show_progress`` is false; else
    ``None``); stops it and closes the repository afterwards.

    Totals for the display come from the events, from a scan of the folder ``scan`` running
    ahead of the work, or from ``totals()`` (called only if progress is shown).
    """
    progress: ProgressReporter | None = None
    ctx = click.get_current_context(silent=True)
    try:
        if ctx is not None and ctx.meta.get(JSON_PROGRESS):
            progress = JsonProgress()
        elif show_progress and sys.stderr.isatty():
            progress = TerminalProgress()
        if progress is not None and scan is not None:
            progress.scan_ahead(scan)
        if progress is not None and totals is not None:
            known = totals()
            if known:
                progress.set_total(*known)
        yield progress
    finally:
        if progress:
            progress.stop()
        repo.close()


class CommandError(KvbackupError):
    """A command used wrongly in a way click cannot see."""
