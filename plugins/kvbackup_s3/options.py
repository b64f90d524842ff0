"""Parsing of ``s3://`` URLs and ``--store-option`` values for the S3 store."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from kvbackup.errors import OptionError, StoreError
from kvbackup.store import MAX_KEY_LENGTH

MAX_S3_KEY_BYTES = 1024
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMG]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}


def parse_size(text: str) -> int:
    """``"64MiB"``, ``"64M"``, ``"1048576"`` -> bytes (binary units)."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r}")
    unit = (match.group(2) or "")[:1].lower()
    return int(match.group(1)) * _UNITS[unit]


@dataclass
class S3Options:
    """Everything needed to open an S3 store; built by :meth:`parse`."""

    bucket: str
    prefix: str = ""  # "" or ends with "/"
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    concurrency: int = 16
    multipart_threshold: int = 64 * 2**20
    multipart_chunksize: int = 16 * 2**20
    # A server that accepts connections and never answers must not hang a command: each
    # request waits at most these (seconds), and one operation, retries included, gives up
    # after ``deadline`` seconds (then at most one request's timeouts more).
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    deadline: float = 30.0
    list_page_size: int = 1000
    retries: int = 0  # botocore's own retries; RetryingStore does the real retrying
    addressing_style: str = "auto"
    checksums: str = "when_supported"  # request checksums; "when_required" for old servers
    conditional_writes: str = "probe"  # "probe", "true" (trust the server) or "false"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    @classmethod
    def parse(cls, url: str, options: dict[str, str]) -> S3Options:
        """Build from ``s3://bucket/prefix`` and string options; a clear error if invalid."""
        if not url.startswith("s3://"):
            raise StoreError(f"{url}: not an s3:// URL")
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise StoreError(f"{url}: no bucket name (expected s3://bucket/prefix)")
        prefix = prefix.strip("/")
        result = cls(bucket=bucket, prefix=prefix + "/" if prefix else "")
        if len(result.prefix.encode()) + MAX_KEY_LENGTH > MAX_S3_KEY_BYTES:
            raise StoreError(f"{url}: prefix too long (S3 keys are limited to 1024 bytes)")
        types = {f.name: f.type for f in fields(cls)}
        for name, text in options.items():
            if name in ("bucket", "prefix") or name not in types:
                known = ", ".join(sorted(set(types) - {"bucket", "prefix"}))
                raise OptionError(f"store 's3': unknown option {name!r} (valid options: {known})")
            try:
                setattr(result, name, _convert(name, types[name], text))
            except ValueError as exc:
                raise OptionError(f"store 's3': option {name}: {exc}") from None
        if result.multipart_chunksize < 5 * 2**20:
            raise OptionError("store 's3': option multipart_chunksize: at least 5MiB (S3 limit)")
        if result.conditional_writes not in ("probe", "true", "false"):
            raise OptionError("store 's3': option conditional_writes: use probe, true or false")
        return result


def _convert(name: str, type_name: object, text: str) -> object:
    if name.startswith("multipart_"):
        return parse_size(text)
    if type_name == "int":
        value = int(text)
        if value < 0 or (name == "concurrency" and value < 1):
            raise ValueError(f"out of range: {text!r}")
        return value
    if type_name == "float":
        seconds = float(text)
        if not 0 < seconds < float("inf"):
            raise ValueError(f"out of range: {text!r}")
        return seconds
    return text
