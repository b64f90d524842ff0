"""Showing names from a repository to a person or a program, safely.

Names in a snapshot are bytes chosen by whoever wrote the repository: they may hold
newlines, terminal escape sequences or bytes that are not UTF-8. Printed raw, they could
forge output lines or drive the terminal. :func:`display_name` gives a one-line, printable,
unambiguous form; :func:`json_name` gives the fields ``--json`` uses (see ``docs/security.md``).
"""

from __future__ import annotations

import base64
import os
from typing import Any

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def display_name(name: bytes | str) -> str:
    """``name`` as one printable line: control and other non-printable characters as
    ``\\n``, ``\\t``, ``\\xNN`` or ``\\uNNNN``, bytes that are not UTF-8 as ``\\xNN``, and a
    backslash doubled, so that two different names never look the same."""
    raw = name if isinstance(name, bytes) else os.fsencode(name)
    text = raw.decode("utf-8", "surrogateescape")
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escape(c) for c in text)


def _escape(c: str) -> str:
    if c in _NAMED:
        return _NAMED[c]
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if c.isprintable():
        return c
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def json_name(key: str, name: bytes | None) -> dict[str, Any]:
    """The JSON fields for a name: ``{key: text}`` when it is UTF-8; otherwise
    ``{key: display_name(name), key + "_base64": exact bytes}``. Never a lone surrogate."""
    if name is None:
        return {key: None}
    try:
        return {key: name.decode("utf-8")}
    except UnicodeDecodeError:
        return {key: display_name(name), key + "_base64": base64.b64encode(name).decode("ascii")}


def json_safe(value: Any) -> Any:
    """``value`` with every string that holds a lone surrogate (a non-UTF-8 byte decoded
    with ``os.fsdecode``) replaced by its :func:`display_name`, so the JSON is valid UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return display_name(value)
        return value
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
