"""Parsers of command-line values: durations and percentages."""

from __future__ import annotations

import re

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 86400.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``30d``, ``12h``, ``90m``, ``45s``, ``2w`` (a bare number is days)."""
    match = _DURATION_RE.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (expected e.g. 30d, 12h, 90m)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_percent(text: str) -> float:
    """``10%`` or ``10`` -> 10.0, between 0 and 100."""
    raw = text.strip().removesuffix("%")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"not a percentage: {text!r} (expected e.g. 10%)") from None
    if not 0 <= value <= 100:
        raise ValueError(f"percentage out of range: {text!r}")
    return value
