"""Snapshot records and snapshot ids (their keys: :mod:`kvbackup.format.layout`).

A backup writes ``snapshots/<id>.open`` when it starts (state "incomplete") and
``snapshots/<id>`` when it completes; both are written once. The listing of ``snapshots/``
is the catalogue: an id with only its ``.open`` record is an incomplete snapshot.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import CorruptionError
from .layout import is_snapshot_id

INCOMPLETE = "incomplete"
COMPLETE = "complete"


def timestamp_id(t: float) -> str:
    """The snapshot id for UTC time ``t``, to the second."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


@dataclass
class Snapshot:
    """One backup: what, when, where it is stored, and how it went."""

    id: str
    time: str
    host: str
    user: str
    source: str
    source_kind: str
    group: str
    state: str = INCOMPLETE
    parent: str | None = None
    resumes: str | None = None
    full: bool = False
    end_time: str | None = None
    filelist: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.state == COMPLETE

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, what: str) -> Snapshot:
        try:
            snap = cls(**data)
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


def iso_utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
