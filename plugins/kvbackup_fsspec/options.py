"""Turning ``--store-option key=value`` strings into fsspec storage options."""

from __future__ import annotations

import json
from typing import Any

from kvbackup.errors import OptionError

#: Options the store consumes itself; every other option goes to the filesystem.
STORE_OPTIONS = ("concurrency", "create")


def coerce(text: str) -> Any:
    """``"true"/"false"`` -> bool, ``"none"/"null"`` -> None, integers and decimals ->
    numbers, ``{...}``/``[...]`` -> parsed JSON; anything else stays a string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    if text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise OptionError(f"store 'fsspec': option value is not valid JSON: {text!r}") from exc
    return text


def storage_options(options: dict[str, str]) -> dict[str, Any]:
    """Storage options for fsspec: coerced values; a dotted name (``client_kwargs.region_name``)
    sets a key of a nested dict."""
    result: dict[str, Any] = {}
    for name, text in options.items():
        if name in STORE_OPTIONS:
            continue
        *parents, leaf = name.split(".")
        target = result
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise OptionError(f"store 'fsspec': option {name}: {part} is not a dict")
        target[leaf] = coerce(text)
    return result


#: fsspec protocols served by s3fs (botocore underneath).
S3_PROTOCOLS = ("s3", "s3a")


def filesystem_options(url: str, options: dict[str, str]) -> dict[str, Any]:
    """The keyword arguments that open ``url``'s filesystem, for the store and the source
    alike: :func:`storage_options`, and on S3 botocore's response checksums checked only
    where S3 requires them (as the S3 store does). Some S3-compatible servers (rclone's
    ``serve s3`` among them) send the whole object's checksum with a ranged GET, which
    botocore would reject. An option the user gives wins."""
    result = storage_options(options)
    if url.split("://", 1)[0] not in S3_PROTOCOLS:
        return result
    config = result.get("config_kwargs", {})
    if not isinstance(config, dict):
        return result
    return {**result, "config_kwargs": {"response_checksum_validation": "when_required", **config}}
