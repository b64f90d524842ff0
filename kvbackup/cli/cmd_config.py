"""kvbackup config show"""

from __future__ import annotations

import os
from typing import Any

import click

from .common import emit_json, get_repo_options, json_option, repo_options
from .profiles import KEEP_KEYS, CliState, default_config_path
from .settings import (
    PASSWORD_COMMAND_ENV,
    PASSWORD_ENV,
    PASSWORD_FILE_ENV,
    REPO_ENV,
    resolve_repository,
)


def effective_settings(opts: Any, state: CliState) -> dict[str, dict[str, Any]]:
    """Each setting a command would use: its value and where it came from."""
    profile = opts.profile
    out: dict[str, dict[str, Any]] = {}
    if opts.repo:
        out["repository"] = {"value": opts.repo, "origin": "--repo"}
    elif profile and profile.get("repository"):
        out["repository"] = {
            "value": profile.get("repository"),
            "origin": profile.origin("repository"),
        }
    else:
        location, is_default = resolve_repository(None)
        out["repository"] = {"value": location, "origin": "default" if is_default else REPO_ENV}
    out["password"] = _password_setting(opts)
    options: dict[str, Any] = {}
    origins = []
    if profile and profile.get("store_options"):
        options.update({k: str(v) for k, v in profile.get("store_options").items()})
        origins.append(profile.origin("store_options"))
    if opts.flag_store_options:
        options.update(opts.flag_store_options)
        origins.append("--store-option")
    if options:
        out["store_options"] = {"value": options, "origin": ", ".join(origins)}
    if profile:
        for key in ("sources", "exclude", "tags", *KEEP_KEYS):
            if key in profile.values:
                out[key] = {"value": profile.get(key), "origin": profile.origin(key)}
    return out


def _password_setting(opts: Any) -> dict[str, Any]:
    """The password's source, never the password itself."""
    if opts.password_file:
        return {"value": f"file {opts.password_file}", "origin": "--password-file"}
    if opts.password_command:
        return {"value": f"command {opts.password_command}", "origin": "--password-command"}
    profile = opts.profile
    if profile:
        for key, what in (("password_command", "command"), ("password_file", "file")):
            if profile.get(key):
                return {"value": f"{what} {profile.get(key)}", "origin": profile.origin(key)}
        if "password" in profile.values:
            return {"value": "(in the config file)", "origin": profile.origin("password")}
    if os.environ.get(PASSWORD_ENV):
        return {"value": "(set)", "origin": PASSWORD_ENV}
    if os.environ.get(PASSWORD_FILE_ENV):
        return {"value": f"file {os.environ[PASSWORD_FILE_ENV]}", "origin": PASSWORD_FILE_ENV}
    if os.environ.get(PASSWORD_COMMAND_ENV):
        value = f"command {os.environ[PASSWORD_COMMAND_ENV]}"
        return {"value": value, "origin": PASSWORD_COMMAND_ENV}
    return {"value": "(asked on the terminal)", "origin": "default"}


@click.group("config")
def command() -> None:
    """Inspect kvbackup's configuration (profiles in the config file).

    \b
    Example:
      kvbackup -p home config show
    """


@command.command("show")
@repo_options
@json_option
@click.pass_obj
def show(state: CliState, as_json: bool, **kwargs: Any) -> None:
    """Print the settings a command would use, and where each comes from.

    Order, highest first: a flag, the profile (-p NAME), the environment, the default.

    \b
    Example:
      kvbackup -p home config show
    """
    opts = get_repo_options(kwargs)
    path = opts.profile.path if opts.profile else (state.config_path or default_config_path())
    data: dict[str, Any] = {
        "config_file": str(path),
        "config_file_exists": os.path.exists(path),
        "profile": opts.profile.name if opts.profile else None,
        "settings": effective_settings(opts, state),
    }
    if as_json:
        emit_json(data)
        return
    exists = "" if data["config_file_exists"] else " (not found)"
    click.echo(f"config file: {path}{exists}")
    click.echo(f"profile: {data['profile'] or '(none)'}")
    for key, setting in data["settings"].items():
        value = setting["value"]
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        click.echo(f"{key}: {value}  [{setting['origin']}]")
