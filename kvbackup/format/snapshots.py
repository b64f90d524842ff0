"""Snapshot records and snapshot ids (their keys: :mod:`kvbackup.format.layout`).

A backup writes ``snapshots/<id>.open`` when it starts (state "incomplete") and
``snapshots/<id>`` when it completes; both are written once. The listing of ``snapshots/``
is the catalogue: an id with only its ``.open`` record is an incomplete snapshot.

An id is the UTC start time to the microsecond and a random suffix,
``YYYYmmddTHHMMSS.ffffffZ-xxxxxxxx``: unique on any store without a conditional write.
Ids of older versions (``YYYYmmddTHHMMSSZ``, ``…Z-<n>``) are still read; ids are ordered
by :func:`~kvbackup.format.layout.snapshot_sort_key` (time, then the old counter as a
number, then the suffix), never as text.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import CorruptionError
from .layout import is_snapshot_id

INCOMPLETE = "incomplete"
COMPLETE = "complete"
#: How times are written in snapshot records (UTC, to the second).
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def new_snapshot_id(t: float) -> str:
    """A fresh snapshot id for UTC time ``t``: to the microsecond, with a random suffix."""
    micro = round(t * 1_000_000)
    second, fraction = divmod(micro, 1_000_000)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(second))
    return f"{stamp}.{fraction:06d}Z-{secrets.token_hex(4)}"


@dataclass
class Snapshot:
    """One backup: what, when, where it is stored, and how it went."""

    id: str
    time: datetime
    host: str
    user: str
    source: str
    source_kind: str
    group: str
    state: str = INCOMPLETE
    parent: str | None = None
    resumes: str | None = None
    full: bool = False
    end_time: datetime | None = None
    filelist: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    #: Set on a copy (``kvbackup copy``): the repository id and snapshot id it was copied
    #: from, carried over when a copy is copied again. Absent on a snapshot made by backup.
    original: dict[str, str] | None = None
    #: The exclude rules the backup applied (:meth:`kvbackup.excludes.ExcludeRules.to_json`).
    excludes: dict[str, Any] | None = None

    @property
    def complete(self) -> bool:
        return self.state == COMPLETE

    def to_json(self) -> dict[str, Any]:
        """The record as stored (times as ``YYYY-mm-ddTHH:MM:SSZ`` strings)."""
        data = asdict(self)
        data["time"] = format_time(self.time)
        data["end_time"] = format_time(self.end_time) if self.end_time else None
        for added in ("original", "excludes"):  # fields newer than the first release
            if data[added] is None:
                del data[added]  # records without them stay readable by older versions
        return data

    @classmethod
    def decode(cls, raw: bytes, what: str) -> Snapshot:
        """The snapshot record in ``raw`` (JSON); :class:`CorruptionError` naming ``what``
        if it is not one."""
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise CorruptionError(f"{what}: malformed snapshot record ({reason})") from None
        return cls.from_json(data, what)

    @classmethod
    def from_json(cls, data: Any, what: str) -> Snapshot:
        try:
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            snap = cls(**data)
            _check_types(snap)
            snap.time = parse_time(data["time"])
            snap.end_time = None if snap.end_time is None else parse_time(data["end_time"])
            if not is_snapshot_id(snap.id) or snap.state not in (INCOMPLETE, COMPLETE):
                raise ValueError("bad id or state")
            if not re.match(r"^[0-9a-f]{16}$", snap.group):
                raise ValueError("bad group id")
            for cid in snap.filelist:
                if len(bytes.fromhex(cid)) != 32:
                    raise ValueError("bad file list chunk id")
        except (TypeError, ValueError) as exc:
            raise CorruptionError(f"{what}: malformed snapshot record ({exc})") from None
        return snap

    def filelist_ids(self) -> list[bytes]:
        return [bytes.fromhex(c) for c in self.filelist]


def utc_time(t: float) -> datetime:
    """The UTC time ``t`` (seconds since the epoch), to the second, as records keep it."""
    return datetime.fromtimestamp(int(t), timezone.utc)


def format_time(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """A record's time; ``ValueError`` (or ``TypeError``) if it is not one."""
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=timezone.utc)


_TEXT_FIELDS = ("id", "time", "host", "user", "source", "source_kind", "group", "state")
_OPTIONAL_TEXT_FIELDS = ("parent", "resumes", "end_time")


def _check_types(snap: Snapshot) -> None:
    """Every field has the type the format says, so no reader trips over a crafted one
    (run on the record as read, before its times are parsed)."""
    for name in _TEXT_FIELDS:
        if not isinstance(getattr(snap, name), str):
            raise TypeError(f"{name} is not a string")
    for name in _OPTIONAL_TEXT_FIELDS:
        if not isinstance(getattr(snap, name), (str, type(None))):
            raise TypeError(f"{name} is not a string")
    if not isinstance(snap.full, bool):
        raise TypeError("full is not a boolean")
    if not isinstance(snap.filelist, list) or not all(isinstance(c, str) for c in snap.filelist):
        raise TypeError("filelist is not a list of chunk ids")
    if not isinstance(snap.tags, list) or not all(isinstance(t, str) for t in snap.tags):
        raise TypeError("tags is not a list of strings")
    if not isinstance(snap.stats, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) for k, v in snap.stats.items()
    ):
        raise TypeError("stats is not a table of counts")
    if not isinstance(snap.skipped, list) or not all(
        isinstance(item, dict) and all(isinstance(v, str) for v in item.values())
        for item in snap.skipped
    ):
        raise TypeError("skipped is not a list of records")
