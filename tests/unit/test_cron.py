"""CronSchedule: parsing, DST rules, and next() against a brute-force oracle."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ppacer
from ppacer.dag.cron import CronSchedule
from ppacer.dag.schedule import NEVER
from ppacer.errors import DagValidationError

ZONES = ["Europe/Warsaw", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
MINUTE = timedelta(minutes=1)


def points(expr: str, tz: str, after: datetime, until: datetime) -> list[datetime]:
    schedule = CronSchedule(expr, tz=tz)
    out, t = [], after
    while True:
        t = schedule.next(t)
        if t > until:
            return out
        out.append(t)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# ---------------------------------------------------------------- the oracle


def _values(field: str, lo: int, hi: int) -> set[int]:
    """A deliberately simple field expander (numbers only) for the oracle."""
    out: set[int] = set()
    for part in field.split(","):
        body, _, step = part.partition("/")
        a, b = (lo, hi) if body == "*" else (int(body.split("-")[0]), int(body.split("-")[-1]))
        if step and "-" not in body and body != "*":
            b = hi
        out.update(range(a, b + 1, int(step or 1)))
    return {0 if v == 7 else v for v in out} if hi == 6 else out


def oracle_next(expr: str, tz: str, current: datetime, horizon: timedelta) -> datetime | None:
    """Step minute by minute through real instants, applying the DST rules directly."""
    minute, hour, dom, month, dow = expr.split()
    mins, hours = _values(minute, 0, 59), _values(hour, 0, 23)
    doms, months, dows = _values(dom, 1, 31), _values(month, 1, 12), _values(dow, 0, 6)
    zone = ZoneInfo(tz)

    def day_ok(local: datetime) -> bool:
        dom_ok, dow_ok = local.day in doms, (local.weekday() + 1) % 7 in dows
        if local.month not in months:
            return False
        if dom.startswith("*") and dow.startswith("*"):
            return True
        if dom.startswith("*"):
            return dow_ok
        if dow.startswith("*"):
            return dom_ok
        return dom_ok or dow_ok

    wildcard = hour.startswith("*")
    u = current.replace(second=0, microsecond=0) + MINUTE
    end = current + horizon
    while u <= end:
        local = u.astimezone(zone)
        matches = local.hour in hours and local.minute in mins and day_ok(local)
        if matches and (wildcard or local.fold == 0):
            return u
        before = (u - MINUTE).astimezone(zone)
        jump = local.utcoffset() - before.utcoffset()  # type: ignore[operator]
        if not wildcard and jump > timedelta(0):
            # u is the end of a spring-forward gap: local wall times in
            # [u at the old offset, u at the new offset) did not happen.
            old_wall = (u + before.utcoffset()).replace(tzinfo=None)  # type: ignore[operator]
            new_wall = local.replace(tzinfo=None)
            w = old_wall
            while w < new_wall:
                probe = w.replace(tzinfo=zone)
                if w.hour in hours and w.minute in mins and day_ok(probe):
                    return u
                w += MINUTE
        u += MINUTE
    return None


def transitions(tz: str) -> list[datetime]:
    zone, found = ZoneInfo(tz), []
    t = utc(2024, 1, 1)
    while t < utc(2031, 1, 1):
        if (t + timedelta(hours=6)).astimezone(zone).utcoffset() != t.astimezone(zone).utcoffset():
            lo, hi = t, t + timedelta(hours=6)
            while hi - lo > MINUTE:
                mid = lo + (hi - lo) / 2
                same = mid.astimezone(zone).utcoffset() == lo.astimezone(zone).utcoffset()
                lo, hi = (mid, hi) if same else (lo, mid)
            found.append(hi.replace(second=0, microsecond=0))
        t += timedelta(hours=6)
    return found


TRANSITIONS = [(tz, t) for tz in ZONES for t in transitions(tz)]


def field(lo: int, hi: int) -> st.SearchStrategy[str]:
    num = st.integers(lo, hi)
    return st.one_of(
        st.just("*"),
        num.map(str),
        st.lists(num, min_size=2, max_size=3, unique=True).map(lambda v: ",".join(map(str, v))),
        st.tuples(num, num).map(lambda ab: f"{min(ab)}-{max(ab)}"),
        st.integers(2, max(2, (hi - lo) // 2)).map(lambda n: f"*/{n}"),
    )


EXPRS = st.tuples(
    field(0, 59), field(0, 23), st.sampled_from(["*", "1", "15", "1-7", "*/2"]),
    st.sampled_from(["*", "1-12", "3,10", "*/2"]), st.sampled_from(["*", "0", "1-5", "6,0"]),
).map(" ".join)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=EXPRS, where=st.sampled_from(TRANSITIONS), offset_min=st.integers(-180, 180))
def test_next_matches_the_oracle_around_dst_transitions(expr, where, offset_min):
    tz, transition = where
    current = transition + timedelta(minutes=offset_min, seconds=7)
    expected = oracle_next(expr, tz, current, timedelta(hours=12))
    got = CronSchedule(expr, tz=tz).next(current)
    if expected is None:
        assert got > current + timedelta(hours=12)
    else:
        assert got == expected


@settings(max_examples=200, deadline=None)
@given(
    expr=EXPRS,
    tz=st.sampled_from(ZONES),
    current=st.datetimes(datetime(2024, 1, 1), datetime(2030, 12, 31), timezones=st.just(UTC)),
)
def test_next_matches_the_oracle_anywhere(expr, tz, current):
    expected = oracle_next(expr, tz, current, timedelta(days=2))
    got = CronSchedule(expr, tz=tz).next(current)
    assert got > current
    if expected is not None:
        assert got == expected
    else:
        assert got > current + timedelta(days=2)


# ---------------------------------------------------------------- explicit cases


def test_hourly_has_23_runs_on_spring_forward_and_25_on_fall_back_in_warsaw():
    spring = points(
        "0 * * * *", "Europe/Warsaw", utc(2024, 3, 30, 22, 59), utc(2024, 3, 31, 21, 59)
    )
    fall = points(
        "0 * * * *", "Europe/Warsaw", utc(2024, 10, 26, 21, 59), utc(2024, 10, 27, 22, 59)
    )
    assert len(spring) == 23
    assert len(fall) == 25
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(fall))


def test_fixed_local_time_in_the_gap_runs_once_after_it_and_once_on_fall_back():
    spring = points("30 2 * * *", "Europe/Warsaw", utc(2024, 3, 31), utc(2024, 3, 31, 23))
    assert spring == [utc(2024, 3, 31, 1, 0)]  # 03:00 CEST, the first valid instant
    fall = points("30 2 * * *", "Europe/Warsaw", utc(2024, 10, 27), utc(2024, 10, 27, 23))
    assert fall == [utc(2024, 10, 27, 0, 30)]  # the first 02:30 (CEST)
    gap = points("0,15,30,45 2 * * *", "Europe/Warsaw", utc(2024, 3, 31), utc(2024, 3, 31, 23))
    assert gap == [utc(2024, 3, 31, 1, 0)]  # four times in the gap: one run


def test_wildcard_hour_runs_in_both_occurrences_of_the_repeated_hour():
    got = points("30 */2 * * *", "Europe/Warsaw", utc(2024, 10, 26, 23), utc(2024, 10, 27, 2))
    assert got == [utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 1, 30)]


def test_lord_howe_half_hour_dst():
    # 2024-10-06 02:00 -> 02:30 (+10:30 -> +11): 02:15 does not exist, runs at 02:30.
    got = points("15 2 * * *", "Australia/Lord_Howe", utc(2024, 10, 5), utc(2024, 10, 6, 12))
    assert got == [utc(2024, 10, 5, 15, 30)]
    midnight = points("0 0 * * *", "Australia/Lord_Howe", utc(2024, 4, 5), utc(2024, 4, 9))
    assert [p.astimezone(ZoneInfo("Australia/Lord_Howe")).hour for p in midnight] == [0] * 4


def test_macros_seconds_and_day_rules():
    start = utc(2024, 3, 11, 10, 0, 0)
    assert CronSchedule("@hourly").next(start) == utc(2024, 3, 11, 11)
    assert CronSchedule("@daily").next(start) == utc(2024, 3, 12)
    assert CronSchedule("@weekly").next(start) == utc(2024, 3, 17)  # a Sunday
    assert CronSchedule("@monthly").next(start) == utc(2024, 4, 1)
    assert CronSchedule("@yearly").next(start) == utc(2025, 1, 1)
    assert CronSchedule("*/20 * * * * *").next(start) == utc(2024, 3, 11, 10, 0, 20)
    # Day-of-month 13 OR Friday: Wednesday 13th and Friday 15th both match.
    either = points("0 0 13 * FRI", "UTC", utc(2024, 3, 12), utc(2024, 3, 16))
    assert either == [utc(2024, 3, 13), utc(2024, 3, 15)]
    assert CronSchedule("0 0 29 2 *").next(utc(2025, 1, 1)) == utc(2028, 2, 29)
    assert CronSchedule("0 12 * * 7").next(start) == CronSchedule("0 12 * * SUN").next(start)


def test_start_end_and_string_form():
    sched = CronSchedule(
        "0 9 * * MON-FRI", tz="Europe/Warsaw", start=utc(2024, 3, 11), end=utc(2024, 3, 12, 12)
    )
    assert sched.start() == utc(2024, 3, 11, 8)
    assert sched.next(utc(2024, 3, 11, 8)) == utc(2024, 3, 12, 8)
    assert sched.next(utc(2024, 3, 12, 8)) == NEVER
    assert str(sched) == "Cron: 0 9 * * MON-FRI (Europe/Warsaw)"
    assert str(CronSchedule("@daily")) == "Cron: @daily"
    assert CronSchedule("0 9 * * *").with_default_tz("Asia/Kolkata").tz == "Asia/Kolkata"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"expr": "61 * * * *"}, "minute field"),
        ({"expr": "* * *"}, "expected 5 fields"),
        ({"expr": "0 0 31 2 *"}, "no month has such a day"),
        ({"expr": "0 0 * * MOO"}, "day-of-week"),
        ({"expr": "0 0 * * *", "tz": "Mars/Olympus"}, "unknown timezone"),
        ({"expr": "0 0 * * *", "start": datetime(2024, 1, 1)}, "naive"),
        (
            {"expr": "0 0 * * *", "start": utc(2024, 2, 1), "end": utc(2024, 1, 1)},
            "before its start",
        ),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CronSchedule(**kwargs)


def test_bad_schedule_fails_at_dag_build_naming_the_dag():
    root = ppacer.Node(ppacer.task(lambda ctx: None, id="t"))
    with pytest.raises(DagValidationError, match=r"DAG 'nightly'.*minute field"):
        ppacer.Dag("nightly", root=root).add_schedule("99 * * * *")
    with pytest.raises(DagValidationError, match=r"DAG 'nightly'.*unknown timezone"):
        ppacer.Dag("nightly", schedule="@daily", tz="Nowhere/Land", root=root)
    with pytest.raises(DagValidationError, match=r"DAG 'nightly'.*naive"):
        ppacer.Dag("nightly", schedule="@daily", start=datetime(2024, 1, 1), root=root)
    with pytest.raises(DagValidationError, match=r"DAG 'nightly'.*before its start"):
        ppacer.Dag(
            "nightly", schedule="@daily", start=utc(2024, 2, 1), end=utc(2024, 1, 1), root=root
        )
    dag = ppacer.Dag("nightly", schedule="0 3 * * *", tz="Europe/Warsaw", root=root).done()
    assert str(dag.schedule) == "Cron: 0 3 * * * (Europe/Warsaw)"
