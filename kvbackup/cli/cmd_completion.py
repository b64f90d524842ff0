"""kvbackup completion"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def command(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    \b
    Example (bash; put the line in ~/.bashrc):
      eval "$(kvbackup completion bash)"
    """
    completion_class = get_completion_class(shell)
    assert completion_class is not None  # click ships all three
    cli = click.get_current_context().find_root().command
    click.echo(completion_class(cli, {}, "kvbackup", "_KVBACKUP_COMPLETE").source())
