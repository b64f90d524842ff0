"""Retention rules: which snapshots ``forget`` keeps, and why. Pure: no store, no clock.

The rules combine as restic's do: a snapshot is kept if *any* rule keeps it, and every rule
that keeps it is named. Snapshots are considered newest first, within one grouping (by
default one host and one source):

* ``last N``: the N newest snapshots;
* ``hourly/daily/weekly/monthly/yearly N``: the newest snapshot of each of the N newest
  hours (days, ISO weeks, months, years, in UTC) that have a snapshot;
* ``within D``: every snapshot taken at most D seconds before the newest one;
* ``tag T``: every snapshot carrying one of the tags;
* ``groups N``: every snapshot of the N newest backup groups (a group is a full backup and
  the incremental ones after it; newest means most recently started).

A count of ``-1`` means "no limit". Only complete snapshots are subject to the rules. An
incomplete snapshot (an interrupted or running backup) is kept while it is the newest of its
host and source (the next backup resumes it); once a later backup of that host and source
exists it is removed as superseded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field

UNLIMITED = -1

#: Rule name -> the bucket a time falls in (UTC).
BUCKETS: dict[str, Callable[[dt.datetime], Hashable]] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: t.isocalendar()[:2],
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: t.year,
}
GROUP_BY_FIELDS = ("host", "source", "tags")


@dataclass(frozen=True)
class RetentionPolicy:
    """What to keep. Counts are ``0`` (rule off), a positive number, or ``-1`` (all)."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: float | None = None  # seconds before the newest snapshot
    tags: frozenset[str] = frozenset()
    groups: int = 0

    def __post_init__(self) -> None:
        for name in ("last", "groups", *BUCKETS):
            if getattr(self, name) < UNLIMITED:
                raise ValueError(f"--keep-{name}: must be a count >= 0 (or -1 for all)")
        if self.within is not None and self.within < 0:
            raise ValueError("--keep-within: must not be negative")

    @property
    def empty(self) -> bool:
        """Whether no rule is given (forget then refuses rather than remove everything)."""
        return (
            not any(getattr(self, name) for name in ("last", "groups", *BUCKETS))
            and self.within is None
            and not self.tags
        )

    def describe(self) -> str:
        parts = [f"{n} {_count(getattr(self, n))}" for n in ("last", *BUCKETS, "groups")]
        parts = [p for p in parts if not p.endswith(" 0")]
        if self.within is not None:
            parts.append(f"within {format_duration(self.within)}")
        parts.extend(f"tag {t}" for t in sorted(self.tags))
        return ", ".join(parts) or "nothing"


@dataclass(frozen=True)
class Candidate:
    """What the rules look at in a snapshot."""

    id: str
    time: dt.datetime  # aware, UTC
    complete: bool = True
    tags: frozenset[str] = frozenset()
    backup_group: str = ""
    series: Hashable = None  # host and source: what "superseded" is judged within


@dataclass
class Decision:
    """One snapshot, whether it is kept, and every reason (rule) that keeps or drops it."""

    candidate: Candidate
    keep: bool
    reasons: list[str] = field(default_factory=list)


def _newest_first(items: Iterable[Candidate]) -> list[Candidate]:
    return sorted(items, key=lambda c: (c.time, c.id), reverse=True)


def apply_policy(candidates: Sequence[Candidate], policy: RetentionPolicy) -> list[Decision]:
    """Decide for every snapshot of one grouping; newest first."""
    ordered = _newest_first(candidates)
    complete = [c for c in ordered if c.complete]
    reasons: dict[str, list[str]] = {c.id: [] for c in ordered}
    if complete:
        newest = complete[0].time
        remaining = {name: getattr(policy, name) for name in BUCKETS}
        last_bucket: dict[str, Hashable] = {}
        for n, cand in enumerate(complete):
            why = reasons[cand.id]
            if policy.last == UNLIMITED or n < policy.last:
                why.append("last")
            for name, bucket_of in BUCKETS.items():
                if remaining[name] == 0:
                    continue
                bucket = bucket_of(cand.time)
                if name in last_bucket and last_bucket[name] == bucket:
                    continue
                last_bucket[name] = bucket
                why.append(name)
                if remaining[name] > 0:
                    remaining[name] -= 1
            if policy.within is not None and (newest - cand.time).total_seconds() <= policy.within:
                why.append("within")
            why.extend(f"tag {t}" for t in sorted(policy.tags & cand.tags))
        for group in _newest_groups(complete, policy.groups):
            for cand in complete:
                if cand.backup_group == group:
                    reasons[cand.id].append("group")
    newest_of_series: dict[Hashable, Candidate] = {}
    for cand in ordered:
        newest_of_series.setdefault(cand.series, cand)
    decisions = []
    for cand in ordered:
        if cand.complete:
            decisions.append(Decision(cand, bool(reasons[cand.id]), reasons[cand.id]))
        elif newest_of_series[cand.series] is cand:
            decisions.append(Decision(cand, True, ["incomplete"]))
        else:
            decisions.append(Decision(cand, False, ["superseded"]))
    return decisions


def _newest_groups(complete: Sequence[Candidate], count: int) -> list[str]:
    if count == 0:
        return []
    started: dict[str, tuple[dt.datetime, str]] = {}  # time and id of its first snapshot
    for cand in complete:
        first = (cand.time, cand.id)
        if cand.backup_group not in started or first < started[cand.backup_group]:
            started[cand.backup_group] = first
    ordered = sorted(started, key=lambda g: started[g], reverse=True)
    return ordered if count == UNLIMITED else ordered[:count]


def grouping_key(group_by: Sequence[str], host: str, source: str, tags: Iterable[str]) -> tuple:
    """The key snapshots are grouped by for retention (``group_by`` fields, in order)."""
    values = {"host": host, "source": source, "tags": tuple(sorted(set(tags)))}
    return tuple(values[name] for name in group_by)


def parse_group_by(text: str) -> tuple[str, ...]:
    """``host,source`` -> ``("host", "source")``; an empty string groups everything together."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for name in names:
        if name not in GROUP_BY_FIELDS:
            raise ValueError(
                f"--group-by: unknown field {name!r} (choose from {', '.join(GROUP_BY_FIELDS)})"
            )
    return names


_UNIT_SECONDS = {"y": 365 * 86400, "m": 30 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600}


def parse_duration(text: str) -> float:
    """Seconds in a restic-style duration: ``1y2m3w4d5h`` (``m`` is months, of 30 days)."""
    import re

    raw = text.strip().lower()
    parts = re.findall(r"(\d+)([ymwdh])", raw)
    if not parts or "".join(n + u for n, u in parts) != raw:
        raise ValueError(f"not a duration: {text!r} (expected e.g. 7d, 2w, 6m, 1y2m, 12h)")
    return float(sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))


def format_duration(seconds: float) -> str:
    left = int(seconds)
    out = []
    for unit, size in _UNIT_SECONDS.items():
        if left >= size:
            out.append(f"{left // size}{unit}")
            left %= size
    return "".join(out) or f"{int(seconds)}s"


def _count(n: int) -> str:
    return "all" if n == UNLIMITED else str(n)
