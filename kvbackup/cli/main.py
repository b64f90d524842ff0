"""Entry point of the ``kvbackup`` command: the command group and error handling."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Any, NoReturn

import click

from .. import __version__
from ..errors import ExitCode, KvbackupError
from .notices import show_engine_notices
from .profiles import CliState, load_profile


class KvbackupGroup(click.Group):
    """Turns kvbackup errors into one line and an exit code; never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return self._invoke(ctx)
        finally:
            if ctx.invoked_subcommand != "plugins":  # that one lists them itself
                _warn_unavailable_plugins()

    def _invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KvbackupError as exc:
            click.echo(f"kvbackup: error: {_one_line(exc)}", err=True)
            ctx.exit(exc.exit_code)
        except BrokenPipeError:  # the reader of our output went away (`kvbackup ls | head`)
            ctx.exit(_reader_gone())
        except OSError as exc:  # the local system said no: disk full, permission denied
            click.echo(f"kvbackup: error: {_os_error(exc)}", err=True)
            ctx.exit(ExitCode.ERROR)
        except KeyboardInterrupt:
            click.echo("kvbackup: interrupted", err=True)
            ctx.exit(ExitCode.INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            if os.environ.get("KVBACKUP_DEBUG"):
                raise
            click.echo(
                f"kvbackup: internal error: {type(exc).__name__}: {_one_line(exc)} "
                "(set KVBACKUP_DEBUG=1 for a traceback)",
                err=True,
            )
            ctx.exit(ExitCode.ERROR)


def _warn_unavailable_plugins() -> None:
    """Name each plugin that could not be loaded, if this command needed the plugins."""
    loaded = sys.modules.get("kvbackup.registry")  # not imported: no plugin was needed
    registry = loaded.built_default_registry() if loaded else None
    for item in registry.unavailable if registry else ():
        click.echo(
            f"kvbackup: warning: plugin {item.plugin!r} is unavailable: {item.reason}", err=True
        )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _os_error(exc: OSError) -> str:
    """``path: reason`` for an error of the local system, without Python's reprs."""
    from ..display import display_name

    reason = exc.strerror or _one_line(exc)
    if exc.filename is None:
        return reason
    where = display_name(exc.filename)
    if exc.filename2 is not None:
        where += f" -> {display_name(exc.filename2)}"
    return f"{where}: {reason}"


@click.group(cls=KvbackupGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kvbackup")
@click.option(
    "--profile",
    "-p",
    "profile_name",
    metavar="NAME",
    help="Use the settings of [profiles.NAME] in the config file (flags still win).",
)
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    help="The config file (default: $KVBACKUP_CONFIG, then $XDG_CONFIG_HOME/kvbackup/config.toml).",
)
@click.pass_context
def cli(ctx: click.Context, profile_name: str | None, config_path: str | None) -> None:
    """Deduplicated, incremental, compressed and encrypted backups into any key/value store.

    Exit codes: 0 success, 2 wrong usage or option, 3 partial (some files unreadable),
    10 no repository, 11 wrong password, 12 corrupt repository, 13 store failure, 14 locked,
    15 not found, 16 differences found, 17 plugin missing or broken, 18 bad config file or
    profile, 19 restore target not writable, 130 interrupted, 141 output closed early,
    1 other errors.

    \b
    Example:
      kvbackup -p home backup      # the repository, password and sources of a profile
    """
    show_engine_notices()
    state = CliState(config_path=config_path)
    if profile_name:
        state.profile = load_profile(profile_name, config_path)
        ctx.default_map = state.profile.command_defaults()
    ctx.obj = state


def _register() -> None:
    from . import (
        cmd_backup,
        cmd_cat,
        cmd_completion,
        cmd_config,
        cmd_copy,
        cmd_diff,
        cmd_find,
        cmd_forget,
        cmd_init,
        cmd_key,
        cmd_ls,
        cmd_mount,
        cmd_plugins,
        cmd_prune,
        cmd_repair,
        cmd_restore,
        cmd_snapshots,
        cmd_stats,
        cmd_unlock,
        cmd_verify,
    )

    for module in (
        cmd_init,
        cmd_backup,
        cmd_restore,
        cmd_snapshots,
        cmd_ls,
        cmd_find,
        cmd_cat,
        cmd_diff,
        cmd_stats,
        cmd_verify,
        cmd_copy,
        cmd_mount,
        cmd_forget,
        cmd_prune,
        cmd_unlock,
        cmd_repair,
        cmd_plugins,
        cmd_key,
        cmd_config,
        cmd_completion,
    ):
        cli.add_command(module.command)


_register()


#: What a command that stops because its reader closed the pipe exits with (128 + SIGPIPE),
#: as ``yes | head`` does.
EXIT_BROKEN_PIPE = 141


def main() -> None:
    """Console-script entry point."""
    from .memory import tune_allocator

    tune_allocator()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # commands clean up on Ctrl-C
    code: Any = 0
    try:
        cli.main(prog_name="kvbackup")
    except SystemExit as exc:
        code = exc.code
    except BrokenPipeError:
        code = _reader_gone()
    except KeyboardInterrupt:  # between commands' own handling: still one line
        _say_interrupted()
        code = ExitCode.INTERRUPTED
    # Done: a Ctrl-C from now on still ends in one line and 130. The interpreter's own
    # shutdown is skipped (everything is closed and flushed here): during it, Python puts
    # the default SIGINT action back and a late Ctrl-C would kill the process silently.
    signal.signal(signal.SIGINT, _interrupted_at_end)
    if isinstance(code, str):
        _say(code)
        code = ExitCode.ERROR
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = _reader_gone()
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 0)


def _say_interrupted() -> None:
    _say("kvbackup: interrupted")


def _say(line: str) -> None:
    with contextlib.suppress(OSError):
        click.echo(line, err=True)


def _interrupted_at_end(signum: int, frame: object) -> NoReturn:
    os.write(2, b"kvbackup: interrupted\n")
    os._exit(ExitCode.INTERRUPTED)


def _reader_gone() -> int:
    """Standard output was closed by its reader (``kvbackup ls | head``): no message, and
    no second error when Python flushes it on exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE
