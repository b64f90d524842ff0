"""Profiles: named settings in a TOML file, so a cron line stays short.

``$XDG_CONFIG_HOME/kvbackup/config.toml`` (or ``--config FILE``)::

    [profiles.home]
    repository = "s3://backups/home"
    store_options = { region = "eu-west-1" }
    password_command = "pass show kvbackup/home"
    sources = ["/home/ann"]
    exclude = ["*.tmp", ".cache"]
    keep_daily = 7
    tags = ["home"]

``kvbackup -p home backup`` then backs ``/home/ann`` up into that repository. Precedence,
highest first: a command-line flag, the profile, the environment, the built-in default.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .settings import password_getter

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_ENV = "KVBACKUP_CONFIG"
#: Retention keys of a profile, and the parameter of ``kvbackup forget`` each sets.
FORGET_PARAMS = {
    "keep_last": "last",
    "keep_hourly": "hourly",
    "keep_daily": "daily",
    "keep_weekly": "weekly",
    "keep_monthly": "monthly",
    "keep_yearly": "yearly",
    "keep_within": "within",
    "keep_tag": "keep_tags",
    "keep_groups": "groups",
}
KEEP_KEYS = tuple(FORGET_PARAMS)
_COUNTS = ("last", "hourly", "daily", "weekly", "monthly", "yearly", "groups")


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_str_table(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(v, (str, int, float, bool)) for v in value.values()
    )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= -1


def _is_str_or_list(value: Any) -> bool:
    return isinstance(value, str) or _is_str_list(value)


#: Every key a profile may hold, with its check and what it should be, for the message.
PROFILE_KEYS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "repository": (_is_str, "a string"),
    "store_options": (_is_str_table, "a table of strings"),
    "password_command": (_is_str, "a string"),
    "password_file": (_is_str, "a string"),
    "password": (_is_str, "a string"),
    "sources": (_is_str_list, "a list of strings"),
    "exclude": (_is_str_list, "a list of strings"),
    "tags": (_is_str_list, "a list of strings"),
    **{key: (_is_count, "a whole number (-1: all)") for key in KEEP_KEYS if key[5:] in _COUNTS},
    "keep_within": (_is_str, "a duration such as 7d or 1y6m"),
    "keep_tag": (_is_str_or_list, "a tag or a list of tags"),
}


def default_config_path() -> Path:
    """``$KVBACKUP_CONFIG``, else ``config.toml`` in the user configuration directory
    (``$XDG_CONFIG_HOME/kvbackup`` on Linux)."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_config_dir("kvbackup", appauthor=False)) / "config.toml"


@dataclass
class Profile:
    """One ``[profiles.NAME]`` table, each value with the line it was set on."""

    name: str
    path: Path
    values: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def origin(self, key: str) -> str:
        """Where ``key`` was set: ``profile home (/path/config.toml:3)``."""
        return f"profile {self.name} ({self.path}:{self.lines.get(key, 0)})"

    def password_getter(self) -> tuple[Callable[[], str], str] | None:
        """A function reading the profile's password and the setting it comes from, or
        ``None`` if the profile says nothing about passwords."""
        for key in ("password_command", "password_file"):
            value = self.values.get(key)
            if value:
                if key == "password_file":
                    value = str(self.path.parent / os.path.expanduser(value))
                    return password_getter(value, None), key
                return password_getter(None, value), key
        if "password" in self.values:
            password = str(self.values["password"])
            return (lambda: password), "password"
        return None

    def command_defaults(self) -> dict[str, dict[str, Any]]:
        """Defaults for commands' options (click's ``default_map``): flags still win."""
        backup: dict[str, Any] = {}
        if self.values.get("sources"):
            backup["sources"] = list(self.values["sources"])
        if "exclude" in self.values:
            backup["exclude"] = list(self.values["exclude"])
        if "tags" in self.values:
            backup["tags"] = list(self.values["tags"])
        forget = {
            FORGET_PARAMS[k]: [v] if k == "keep_tag" and isinstance(v, str) else v
            for k, v in self.values.items()
            if k in FORGET_PARAMS
        }
        return {"backup": backup, "forget": forget}


@dataclass
class CliState:
    """What the ``kvbackup`` group options chose, for every command to see."""

    config_path: str | None = None
    profile: Profile | None = None


def _table_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line of each table header and key: ``("profiles", "home", "repository") -> 4``.

    The file has been parsed already; this only finds lines for messages, so it handles the
    plain forms (``[a.b]``, ``key = ...``, quoted keys) and skips the rest.
    """
    out: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$", line)
        if header:
            table = tuple(_unquote(part) for part in header.group(1).split("."))
            out.setdefault(table, number)
            continue
        key = re.match(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)\s*=""", line)
        if key:
            out.setdefault((*table, _unquote(key.group(1))), number)
    return out


def _unquote(part: str) -> str:
    part = part.strip()
    return part[1:-1] if len(part) >= 2 and part[0] == part[-1] and part[0] in "\"'" else part


def read_config(path: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """The parsed config file and the line of each key; :class:`ConfigError` if it cannot
    be read, is not TOML, or holds a key kvbackup does not know."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    lines = _table_lines(text)
    for key in data:
        if key != "profiles":
            raise ConfigError(
                f"{path}:{lines.get((key,), 0)}: unknown key {key!r} "
                "(settings go in [profiles.NAME] tables)"
            )
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}:{lines.get(('profiles',), 0)}: 'profiles' must be a table")
    for name, table in profiles.items():
        where = f"{path}:{lines.get(('profiles', name), 0)}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: profile {name!r} must be a table")
        for key, value in table.items():
            line = lines.get(("profiles", name, key), lines.get(("profiles", name), 0))
            if key not in PROFILE_KEYS:
                raise ConfigError(
                    f"{path}:{line}: unknown key {key!r} in profile {name!r} "
                    f"(known: {', '.join(PROFILE_KEYS)})"
                )
            check, expected = PROFILE_KEYS[key]
            if not check(value):
                raise ConfigError(f"{path}:{line}: {key!r} in profile {name!r} must be {expected}")
    return data, lines


def load_profile(name: str, config: str | os.PathLike[str] | None = None) -> Profile:
    """The profile ``name`` from ``config`` (default: :func:`default_config_path`)."""
    path = Path(config) if config else default_config_path()
    data, lines = read_config(path)
    profiles = data.get("profiles", {})
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(f"{path}: no profile {name!r} (profiles: {known})")
    values = dict(profiles[name])
    profile = Profile(
        name,
        path,
        values,
        {k: lines.get(("profiles", name, k), 0) for k in values},
    )
    if "password" in values:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"{path}:{profile.lines['password']}: a password in the config file needs the "
                f"file to be readable by its owner only (its mode is {mode:04o}: run "
                f"`chmod 600 {path}`), or use password_file or password_command"
            )
    return profile
