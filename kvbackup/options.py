"""Plugin options: a typed schema (a dataclass) per plugin, parsed from strings.

Options arrive as strings from the command line (``--store-option key=value``,
``--source-option``, ``--compression zstd:19``) or as JSON values from the repository config.
A plugin declares what it takes as a dataclass and passes it as ``register(...,
options=Schema)``; its factory then receives an instance. An unknown option or a bad value
is an :class:`~kvbackup.errors.OptionError` (a usage error, exit 2) listing the valid ones::

    @dataclass
    class ZstdOptions:
        level: int = option(3, min=1, max=22, help="compression level")

Field types may be ``str``, ``int``, ``float``, ``bool``, ``Literal[...]`` of strings, or any
of these ``| None``. Checks that span fields go in ``__post_init__`` (raise ``ValueError``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, Union

from .errors import OptionError

T = TypeVar("T")

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def parse_bool(text: str) -> bool:
    """``true/false``, ``yes/no``, ``1/0``, ``on/off`` (any case); ``ValueError`` otherwise,
    so that a typo is an error rather than a silent ``false``."""
    value = text.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError(f"not a boolean: {text!r} (use true or false)")


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str = "",
    min: float | None = None,
    max: float | None = None,
) -> Any:
    """A schema field with a help text and an optional numeric range."""
    return dataclasses.field(default=default, metadata={"help": help, "min": min, "max": max})


def schema_fields(schema: type) -> list[dataclasses.Field[Any]]:
    """The options a schema declares."""
    return [f for f in dataclasses.fields(schema) if f.init]


def describe_schema(schema: type) -> str:
    """``valid options: a, b, c`` (or ``it takes no options``), for error messages."""
    names = sorted(f.name for f in schema_fields(schema))
    return f"valid options: {', '.join(names)}" if names else "it takes no options"


def parse_options(schema: type[T], values: Mapping[str, Any], what: str) -> T:
    """An instance of ``schema`` from ``values`` (strings, or values of the right type);
    :class:`OptionError` naming ``what`` for an unknown option or a bad value."""
    specs = {f.name: f for f in schema_fields(schema)}
    hints = typing.get_type_hints(schema)
    kwargs: dict[str, Any] = {}
    for name, raw in values.items():
        spec = specs.get(name)
        if spec is None:
            raise OptionError(f"{what}: unknown option {name!r} ({describe_schema(schema)})")
        try:
            value = convert(hints.get(name, str), raw)
            _check_range(spec, value)
        except ValueError as exc:
            raise OptionError(f"{what}: option {name}: {exc}") from None
        kwargs[name] = value
    missing = [n for n, f in specs.items() if n not in kwargs and _required(f)]
    if missing:
        raise OptionError(f"{what}: missing option {', '.join(missing)}")
    try:
        return schema(**kwargs)
    except ValueError as exc:  # a check in __post_init__
        raise OptionError(f"{what}: {exc}") from None


def option_values(parsed: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    """The converted values of the options that were given (for the repository config)."""
    return {name: getattr(parsed, name) for name in given}


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _check_range(spec: dataclasses.Field[Any], value: Any) -> None:
    low, high = spec.metadata.get("min"), spec.metadata.get("max")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"{low if low is not None else ''}..{high if high is not None else ''}"
        raise ValueError(f"{value} is out of range ({bounds})")


def convert(tp: Any, raw: Any) -> Any:
    """``raw`` (a string, or already a value) as type ``tp``; ``ValueError`` if it is not one."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("none", "null")):
            return None
        return convert(args[0], raw) if len(args) == 1 else raw
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if raw not in choices:
            raise ValueError(f"{raw!r} is not one of {', '.join(map(str, choices))}")
        return raw
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            return parse_bool(raw)
        raise ValueError(f"not a boolean: {raw!r}")
    if tp is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                pass
        raise ValueError(f"not an integer: {raw!r}")
    if tp is float:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, str):
            try:
                return float(raw.strip())
            except ValueError:
                pass
        raise ValueError(f"not a number: {raw!r}")
    if tp is str:
        if isinstance(raw, str):
            return raw
        raise ValueError(f"not a string: {raw!r}")
    return raw
