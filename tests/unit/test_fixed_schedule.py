"""FixedSchedule: its stored string form, ``next`` on the grid, and argument checks."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

import ppacer
from ppacer.dag.schedule import first_point_at_or_after

START = datetime(2024, 3, 11, 22, 50, 20, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)


def to_us(value: datetime) -> int:
    return (value - EPOCH) // US


def from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def expected_next_us(start_us: int, interval_us: int, t_us: int) -> int:
    """The first grid point strictly after ``t``, in integer microseconds."""
    if t_us < start_us:
        return start_us
    return start_us + ((t_us - start_us) // interval_us + 1) * interval_us


@pytest.mark.parametrize(
    ("interval", "text"),
    [
        (timedelta(seconds=10), "FixedSchedule: 10s"),
        (10, "FixedSchedule: 10s"),
        (timedelta(minutes=90), "FixedSchedule: 1h30m0s"),
        (timedelta(hours=1), "FixedSchedule: 1h0m0s"),
        (timedelta(minutes=1, seconds=1), "FixedSchedule: 1m1s"),
        (timedelta(hours=1, minutes=1, seconds=1), "FixedSchedule: 1h1m1s"),
        (timedelta(days=1), "FixedSchedule: 24h0m0s"),
        (1.5, "FixedSchedule: 1.5s"),
        (timedelta(milliseconds=1), "FixedSchedule: 1ms"),
    ],
)
def test_str_is_the_stored_human_form(interval, text):
    assert str(ppacer.FixedSchedule(START, interval)) == text


def test_str_of_distinct_intervals_is_distinct():
    one = ppacer.FixedSchedule(START, timedelta(hours=1, milliseconds=1))
    two = ppacer.FixedSchedule(START, timedelta(hours=1, milliseconds=2))
    assert str(one) != str(two)


def test_dag_meta_hash_changes_when_the_interval_changes():
    def dag(interval: timedelta) -> ppacer.Dag:
        root = ppacer.Node(ppacer.task(id="a")(lambda ctx: None))
        return ppacer.Dag("d", schedule=ppacer.FixedSchedule(START, interval), root=root)

    one = dag(timedelta(hours=1, milliseconds=1))
    two = dag(timedelta(hours=1, milliseconds=2))
    assert one.hash_meta() != two.hash_meta()


def test_start_is_kept_in_utc():
    cet = timezone(timedelta(hours=1))
    schedule = ppacer.FixedSchedule(datetime(2024, 3, 11, 23, 50, 20, tzinfo=cet), 10)
    assert schedule.start() == START
    assert schedule.start().utcoffset() == timedelta(0)


def test_next_of_a_time_before_start_is_start():
    schedule = ppacer.FixedSchedule(START, 10)
    assert schedule.next(START - US) == START
    assert schedule.next(START - timedelta(days=400)) == START


def test_next_of_start_is_the_second_point():
    schedule = ppacer.FixedSchedule(START, 10)
    assert schedule.next(START) == START + timedelta(seconds=10)


def test_next_of_a_grid_point_is_the_following_grid_point():
    schedule = ppacer.FixedSchedule(START, timedelta(minutes=5))
    point = START + 7 * timedelta(minutes=5)
    assert schedule.next(point) == point + timedelta(minutes=5)


def test_next_just_before_a_grid_point_is_that_point():
    schedule = ppacer.FixedSchedule(START, timedelta(minutes=5))
    point = START + 7 * timedelta(minutes=5)
    assert schedule.next(point - US) == point


def test_next_between_grid_points_is_the_following_one():
    schedule = ppacer.FixedSchedule(START, 10)
    assert schedule.next(START + timedelta(seconds=25)) == START + timedelta(seconds=30)


def test_next_ignores_prev():
    schedule = ppacer.FixedSchedule(START, 10)
    t = START + timedelta(seconds=25)
    assert schedule.next(t, START) == schedule.next(t)


def test_next_accepts_current_in_another_zone_and_returns_utc():
    schedule = ppacer.FixedSchedule(START, 10)
    minus5 = timezone(timedelta(hours=-5))
    current = (START + timedelta(seconds=25)).astimezone(minus5)
    result = schedule.next(current)
    assert result == START + timedelta(seconds=30)
    assert result.utcoffset() == timedelta(0)


@pytest.mark.timeout(30)
def test_next_is_arithmetic_for_a_start_100_years_ago_with_a_1ms_interval():
    start = datetime(1925, 6, 1, 0, 0, 0, tzinfo=UTC)
    schedule = ppacer.FixedSchedule(start, timedelta(milliseconds=1))
    current = datetime(2025, 6, 1, 12, 34, 56, 789321, tzinfo=UTC)
    # start is on the whole-millisecond grid, so the next point is the next whole millisecond.
    assert schedule.next(current) == datetime(2025, 6, 1, 12, 34, 56, 790000, tzinfo=UTC)
    on_grid = datetime(2025, 6, 1, 12, 34, 56, 789000, tzinfo=UTC)
    assert schedule.next(on_grid) == datetime(2025, 6, 1, 12, 34, 56, 790000, tzinfo=UTC)


def test_first_point_at_or_after_includes_the_point_itself():
    schedule = ppacer.FixedSchedule(START, 10)
    point = START + timedelta(seconds=30)
    assert first_point_at_or_after(schedule, point) == point
    assert first_point_at_or_after(schedule, point + US) == point + timedelta(seconds=10)
    assert first_point_at_or_after(schedule, START - timedelta(days=1)) == START


def test_naive_start_is_rejected_mentioning_naive():
    with pytest.raises(ValueError, match="naive"):
        ppacer.FixedSchedule(datetime(2024, 3, 11, 22, 50, 20), 10)


def test_naive_current_is_rejected_mentioning_naive():
    schedule = ppacer.FixedSchedule(START, 10)
    with pytest.raises(ValueError, match="naive"):
        schedule.next(datetime(2024, 3, 11, 22, 50, 20))


@pytest.mark.parametrize(
    "interval",
    [0, -1, 0.0, -0.5, timedelta(0), timedelta(seconds=-10), -timedelta(microseconds=1)],
)
def test_interval_that_is_not_positive_is_rejected(interval):
    with pytest.raises(ValueError, match="positive"):
        ppacer.FixedSchedule(START, interval)


def test_interval_below_one_millisecond_is_rejected():
    with pytest.raises(ValueError, match="1 ms"):
        ppacer.FixedSchedule(START, timedelta(microseconds=999))


def test_fixed_schedule_implements_the_schedule_protocol():
    assert isinstance(ppacer.FixedSchedule(START, 10), ppacer.Schedule)


def _random_cases(count: int, seed: int) -> list[tuple[int, int, int]]:
    """(start_us, interval_us, t_us) triples: varied scales, t before, on and off the grid."""
    rng = random.Random(seed)
    lo, hi = to_us(datetime(1900, 1, 1, tzinfo=UTC)), to_us(datetime(2200, 1, 1, tzinfo=UTC))
    cases = []
    for _ in range(count):
        start_us = rng.randint(lo, hi)
        scale = rng.choice([10**4, 10**6, 60 * 10**6, 3600 * 10**6, 7 * 86_400 * 10**6])
        interval_us = rng.randint(1_000, scale)
        max_steps = 10**15 // interval_us  # stay within about 30 years of start
        kind = rng.randrange(4)
        if kind == 0:  # before start
            t_us = start_us - rng.randint(1, 10**12)
        elif kind == 1:  # exactly on the grid
            t_us = start_us + rng.randint(0, max_steps) * interval_us
        elif kind == 2:  # one microsecond before a grid point
            t_us = start_us + rng.randint(1, max_steps) * interval_us - 1
        else:  # anywhere after start
            t_us = start_us + rng.randint(0, 10**15)
        cases.append((start_us, interval_us, t_us))
    return cases


@pytest.mark.parametrize(("start_us", "interval_us", "t_us"), _random_cases(300, seed=20240311))
def test_next_is_the_first_grid_point_strictly_after_t(start_us, interval_us, t_us):
    start, interval, t = from_us(start_us), timedelta(microseconds=interval_us), from_us(t_us)
    r = ppacer.FixedSchedule(start, interval).next(t)
    assert r > t
    assert (r - start) % interval == timedelta(0)
    if t < start:
        assert r == start
    else:
        assert r - interval <= t
    assert to_us(r) == expected_next_us(start_us, interval_us, t_us)
