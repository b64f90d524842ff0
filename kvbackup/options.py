"""Reading plugin options, which arrive as strings (``--store-option key=value``)."""

from __future__ import annotations

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
