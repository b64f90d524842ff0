"""Every command's --help shows an example; shell completion scripts for bash, zsh and fish
come from click and complete kvbackup's commands and options."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest

from kvbackup.cli.main import cli


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, command in group.commands.items():
        out.append((*prefix, name))
        if isinstance(command, click.Group):
            out.extend(commands(command, (*prefix, name)))
    return out


@pytest.mark.parametrize("path", commands(cli), ids=" ".join)
def test_every_command_help_shows_an_example(path: tuple[str, ...]) -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    example = [n for n, line in enumerate(lines) if line.strip().startswith("Example")]
    assert example, f"kvbackup {' '.join(path)} --help has no example"
    assert lines[example[0] + 1].strip().startswith("kvbackup ") or lines[
        example[0] + 1
    ].strip().startswith("eval ")


def complete(shell: str, words: str, cword: int) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KVBACKUP_")}
    env.update(_KVBACKUP_COMPLETE=f"{shell}_complete", COMP_WORDS=words, COMP_CWORD=str(cword))
    done = subprocess.run(
        [sys.executable, "-c", "from kvbackup.cli.main import main; main()"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script_for_each_shell(shell: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kvbackup", "completion", shell],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "_KVBACKUP_COMPLETE" in done.stdout and f"{shell}_complete" in done.stdout


def test_bash_completion_completes_commands_and_options() -> None:
    assert "plain,find" in complete("bash", "kvbackup fi", 1).splitlines()
    options = complete("bash", "kvbackup mount --ca", 2).splitlines()
    assert options == ["plain,--cache-size"]


def test_running_the_command_in_process_leaves_the_applications_logging_working(
    tmp_path: object,
) -> None:
    """A script that calls the command in-process (click's runner, or ``cli.main``) still
    receives kvbackup's warnings through its own logging handlers afterwards."""
    import logging

    from click.testing import CliRunner

    CliRunner().invoke(cli, ["snapshots", "-r", str(tmp_path)])  # no repository there: exit 3
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    root = logging.getLogger()
    handler = Collect(logging.WARNING)
    root.addHandler(handler)
    try:
        logging.getLogger("kvbackup.locks").warning("a notice")
    finally:
        root.removeHandler(handler)
    assert [r.getMessage() for r in seen] == ["a notice"]
