"""Where settings come from: a flag, then the environment, then a default."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import click

from ..errors import BadPasswordError, KvbackupError, UsageError

REPO_ENV = "KVBACKUP_REPO"
PASSWORD_ENV = "KVBACKUP_PASSWORD"
PASSWORD_FILE_ENV = "KVBACKUP_PASSWORD_FILE"
PASSWORD_COMMAND_ENV = "KVBACKUP_PASSWORD_COMMAND"
#: The environment variables giving a password, a password file and a password command.
PASSWORD_ENVS = (PASSWORD_ENV, PASSWORD_FILE_ENV, PASSWORD_COMMAND_ENV)
#: The same for the repository copied from (``kvbackup copy``), as restic names them.
FROM_PASSWORD_ENVS = (
    "KVBACKUP_FROM_PASSWORD",
    "KVBACKUP_FROM_PASSWORD_FILE",
    "KVBACKUP_FROM_PASSWORD_COMMAND",
)


def default_repository() -> str:
    """The default local repository, under the user data directory."""
    import platformdirs

    return os.path.join(platformdirs.user_data_dir("kvbackup", appauthor=False), "repository")


def resolve_repository(flag: str | None) -> tuple[str, bool]:
    """The repository location, and whether it is the default one. An empty ``--repo``
    is an error, never the default repository."""
    if flag is not None:
        if not flag.strip():
            raise UsageError("--repo is empty: give a repository path or URL")
        return flag, False
    env = os.environ.get(REPO_ENV)
    if env:
        return env, False
    return default_repository(), True


def password_source(
    password_file: str | None,
    password_command: str | None,
    env: tuple[str, str, str] = PASSWORD_ENVS,
) -> str | None:
    """The configured, non-interactive source of the password (a flag or an environment
    variable), or ``None`` if there is none (a terminal prompt may then be used).

    A configured password means the user expects an encrypted repository: commands refuse
    an unencrypted one rather than write into it in the clear (see ``docs/security.md``).
    """
    if password_file:
        return "--password-file"
    if password_command:
        return "--password-command"
    for name in env:
        if os.environ.get(name):
            return name
    return None


def password_getter(
    password_file: str | None,
    password_command: str | None,
    new: bool = False,
    env: tuple[str, str, str] = PASSWORD_ENVS,
    what: str = "Repository password",
) -> Callable[[], str]:
    """A function that finds the password when it is needed (and only then).

    Order: ``--password-file``, ``--password-command``, ``KVBACKUP_PASSWORD``,
    ``KVBACKUP_PASSWORD_FILE``, ``KVBACKUP_PASSWORD_COMMAND``, then a prompt on a terminal
    (twice for a new password).
    """

    password_env, file_env, command_env = env

    def get() -> str:
        if password_file:
            return read_password_file(password_file)
        if password_command:
            return _run_command(password_command)
        if os.environ.get(password_env):
            return os.environ[password_env]
        if os.environ.get(file_env):
            return read_password_file(os.environ[file_env])
        if os.environ.get(command_env):
            return _run_command(os.environ[command_env])
        if sys.stdin is not None and sys.stdin.isatty():
            if new:
                return str(
                    click.prompt(
                        "New repository password",
                        hide_input=True,
                        confirmation_prompt=True,
                        err=True,
                    )
                )
            return str(click.prompt(what, hide_input=True, err=True))
        flags = "--from-password-file" if password_env != PASSWORD_ENV else "--password-file"
        raise BadPasswordError(
            f"a password is needed: set {password_env} or {file_env}, or pass "
            f"{flags} or {flags.replace('file', 'command')}"
        )

    return get


def read_password_file(path: str) -> str:
    """The password in the file at ``path`` (its trailing newline removed).

    The password is the file's bytes: a file that is not UTF-8 works too (its bytes are
    kept with ``surrogateescape`` and given to the KDF exactly).
    """
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            text = fh.read().rstrip("\r\n")
    except OSError as exc:
        raise KvbackupError(f"cannot read password file {path}: {exc.strerror}") from None
    if not text:
        raise BadPasswordError(f"password file {path} is empty")
    return text


def _run_command(command: str) -> str:
    try:
        done = subprocess.run(command, shell=True, capture_output=True, check=False)
    except OSError as exc:
        raise KvbackupError(f"password command failed: {exc}") from None
    if done.returncode != 0:
        raise KvbackupError(f"password command exited with status {done.returncode}")
    text = done.stdout.decode("utf-8", "surrogateescape").rstrip("\r\n")
    if not text:
        raise BadPasswordError("password command printed nothing")
    return text
