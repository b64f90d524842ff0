"""Retention rules on synthetic timelines (fixed times, no store): which snapshots are kept
and which rule keeps each, checked by hand and against a plain reference implementation."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvbackup.ops.retention import (
    BUCKETS,
    UNLIMITED,
    Candidate,
    RetentionPolicy,
    apply_policy,
    format_duration,
    grouping_key,
    parse_duration,
    parse_group_by,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def at(hours: float, sid: str | None = None, **kw: object) -> Candidate:
    t = T0 + dt.timedelta(hours=hours)
    return Candidate(id=sid or t.strftime("%Y%m%dT%H%M%SZ"), time=t, **kw)  # type: ignore[arg-type]


def kept(decisions: list) -> dict[str, list[str]]:
    return {d.candidate.id: d.reasons for d in decisions if d.keep}


def test_keep_last_keeps_the_newest_n() -> None:
    snaps = [at(h) for h in range(10)]
    got = kept(apply_policy(snaps, RetentionPolicy(last=3)))
    assert sorted(got) == sorted(s.id for s in snaps[-3:])
    assert all(r == ["last"] for r in got.values())


def test_keep_daily_keeps_the_newest_of_each_day() -> None:
    # Four snapshots a day for five days.
    snaps = [at(day * 24 + h) for day in range(5) for h in (1, 7, 13, 19)]
    got = kept(apply_policy(snaps, RetentionPolicy(daily=3)))
    assert sorted(got) == sorted(at(day * 24 + 19).id for day in (2, 3, 4))


def test_rules_combine_as_a_union_and_name_every_rule() -> None:
    snaps = [at(day * 24 + h) for day in range(3) for h in (1, 13)]
    got = kept(apply_policy(snaps, RetentionPolicy(last=1, daily=2)))
    newest, day_before = at(2 * 24 + 13).id, at(24 + 13).id
    assert got == {newest: ["last", "daily"], day_before: ["daily"]}


def test_keep_weekly_uses_iso_weeks() -> None:
    # 2026-01-04 is a Sunday; 2026-01-05 a Monday (a new ISO week).
    sunday, monday = at(3 * 24 + 10), at(4 * 24 + 10)
    got = kept(apply_policy([at(3 * 24 + 1), sunday, monday], RetentionPolicy(weekly=5)))
    assert sorted(got) == sorted([sunday.id, monday.id])


def test_keep_within_is_relative_to_the_newest_snapshot_not_the_clock() -> None:
    snaps = [at(h) for h in (0, 10, 20, 30)]
    got = kept(apply_policy(snaps, RetentionPolicy(within=10 * 3600)))
    assert sorted(got) == [at(20).id, at(30).id]


def test_keep_tag_keeps_tagged_snapshots_whatever_their_age() -> None:
    snaps = [at(0, tags=frozenset({"monthly-archive"})), at(1), at(2)]
    got = kept(apply_policy(snaps, RetentionPolicy(last=1, tags=frozenset({"monthly-archive"}))))
    assert got == {at(0).id: ["tag monthly-archive"], at(2).id: ["last"]}


def test_keep_groups_keeps_the_newest_groups_whole() -> None:
    snaps = [at(h, backup_group=f"g{h // 10}") for h in range(30)]  # groups g0, g1, g2
    got = kept(apply_policy(snaps, RetentionPolicy(groups=2)))
    assert sorted(got) == sorted(s.id for s in snaps if s.backup_group in ("g1", "g2"))
    assert all(r == ["group"] for r in got.values())


def test_unlimited_count_keeps_every_bucket() -> None:
    snaps = [at(h * 24) for h in range(40)]
    got = kept(apply_policy(snaps, RetentionPolicy(daily=UNLIMITED)))
    assert len(got) == 40


def test_incomplete_snapshot_is_kept_while_newest_of_its_source_then_superseded() -> None:
    running = at(5, complete=False, series="a")
    old = at(1, complete=False, series="a")
    decisions = {
        d.candidate.id: d
        for d in apply_policy([old, at(2, series="a"), running], RetentionPolicy(last=1))
    }
    assert decisions[running.id].keep and decisions[running.id].reasons == ["incomplete"]
    assert not decisions[old.id].keep and decisions[old.id].reasons == ["superseded"]


def test_no_rule_is_an_empty_policy_and_bad_counts_are_refused() -> None:
    assert RetentionPolicy().empty
    assert not RetentionPolicy(tags=frozenset({"x"})).empty
    with pytest.raises(ValueError, match="keep-daily"):
        RetentionPolicy(daily=-2)


def test_durations_and_group_by_parse() -> None:
    assert parse_duration("1y2m3w4d5h") == (365 + 60 + 21 + 4) * 86400 + 5 * 3600
    assert format_duration(parse_duration("2w3d")) == "2w3d"
    for bad in ("", "7", "7x", "d7"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert parse_group_by("host,tags") == ("host", "tags")
    assert parse_group_by("") == ()
    with pytest.raises(ValueError, match="unknown field"):
        parse_group_by("host,colour")
    assert grouping_key(("source", "tags"), "h", "/x", ["b", "a", "b"]) == ("/x", ("a", "b"))


# ------------------------------------------------------------------ property test


def reference(cands: list[Candidate], p: RetentionPolicy) -> dict[str, set[str]]:
    """The rules written the obvious way, each on its own, then united."""
    done = sorted((c for c in cands if c.complete), key=lambda c: (c.time, c.id), reverse=True)
    out: dict[str, set[str]] = {}

    def mark(chosen: list[Candidate], why: str) -> None:
        for c in chosen:
            out.setdefault(c.id, set()).add(why)

    mark(done if p.last == UNLIMITED else done[: p.last], "last")
    for name, bucket_of in BUCKETS.items():
        newest_per_bucket: dict[object, Candidate] = {}
        for c in done:
            newest_per_bucket.setdefault(bucket_of(c.time), c)
        chosen = list(newest_per_bucket.values())  # insertion order: newest buckets first
        n = getattr(p, name)
        mark(chosen if n == UNLIMITED else chosen[:n], name)
    if p.within is not None and done:
        mark([c for c in done if c.time >= done[0].time - dt.timedelta(seconds=p.within)], "within")
    for tag in p.tags:
        mark([c for c in done if tag in c.tags], f"tag {tag}")
    starts: dict[str, tuple[dt.datetime, str]] = {}
    for c in done:
        starts[c.backup_group] = min(starts.get(c.backup_group, (c.time, c.id)), (c.time, c.id))
    groups = sorted(starts, key=lambda g: starts[g], reverse=True)
    keep_groups = groups if p.groups == UNLIMITED else groups[: p.groups]
    mark([c for c in done if c.backup_group in keep_groups], "group")
    return out


counts = st.one_of(st.just(0), st.just(UNLIMITED), st.integers(1, 6))
policies = st.builds(
    RetentionPolicy,
    last=counts,
    hourly=counts,
    daily=counts,
    weekly=counts,
    monthly=counts,
    yearly=counts,
    within=st.one_of(st.none(), st.integers(0, 90 * 86400).map(float)),
    tags=st.frozensets(st.sampled_from(["a", "b"]), max_size=2),
    groups=counts,
)
timelines = st.lists(
    st.tuples(
        st.integers(0, 3 * 365 * 24 * 60),  # minutes after T0: three years
        st.frozensets(st.sampled_from(["a", "b", "c"]), max_size=2),
        st.sampled_from(["g1", "g2", "g3", "g4"]),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(timelines, policies)
def test_policy_matches_the_reference_implementation(
    timeline: list[tuple[int, frozenset[str], str]], policy: RetentionPolicy
) -> None:
    cands = [
        Candidate(id=f"s{n:03d}", time=T0 + dt.timedelta(minutes=m), tags=tags, backup_group=group)
        for n, (m, tags, group) in enumerate(timeline)
    ]
    got = {d.candidate.id: set(d.reasons) for d in apply_policy(cands, policy) if d.keep}
    assert got == reference(cands, policy)
    # Every snapshot is decided exactly once, newest first.
    decisions = apply_policy(cands, policy)
    assert sorted(d.candidate.id for d in decisions) == sorted(c.id for c in cands)
    times = [d.candidate.time for d in decisions]
    assert times == sorted(times, reverse=True)
