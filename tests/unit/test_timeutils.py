"""Stored timestamp text (format_ts/parse_ts) and the ManualClock."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from ppacer.timeutils import ManualClock, format_ts, parse_ts, require_aware

STORED_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}UTC\+00:00")
CET = timezone(timedelta(hours=1))
EST = timezone(timedelta(hours=-5))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2024, 3, 11, 22, 50, 20, tzinfo=UTC), "2024-03-11T22:50:20.000000UTC+00:00"),
        (
            datetime(2024, 3, 11, 22, 50, 20, 8809, tzinfo=UTC),
            "2024-03-11T22:50:20.008809UTC+00:00",
        ),
        (
            datetime(2024, 3, 11, 22, 50, 20, 500000, tzinfo=UTC),
            "2024-03-11T22:50:20.500000UTC+00:00",
        ),
        (
            datetime(2024, 3, 11, 23, 50, 20, 8809, tzinfo=CET),
            "2024-03-11T22:50:20.008809UTC+00:00",
        ),
        (datetime(2024, 3, 11, 20, 0, 0, tzinfo=EST), "2024-03-12T01:00:00.000000UTC+00:00"),
        (
            datetime(2024, 7, 1, 12, 0, 0, 1, tzinfo=ZoneInfo("Europe/Warsaw")),
            "2024-07-01T10:00:00.000001UTC+00:00",
        ),
        (datetime(1000, 1, 1, tzinfo=UTC), "1000-01-01T00:00:00.000000UTC+00:00"),
        (
            datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            "9999-12-31T23:59:59.999999UTC+00:00",
        ),
    ],
)
def test_format_ts_is_utc_with_six_fraction_digits(value, text):
    formatted = format_ts(value)
    assert formatted == text
    assert STORED_RE.fullmatch(formatted)


def test_format_ts_rejects_a_naive_datetime_mentioning_naive():
    with pytest.raises(ValueError, match="naive"):
        format_ts(datetime(2024, 3, 11, 22, 50, 20))


def test_format_ts_pads_years_below_1000_to_four_digits():
    value = datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC)
    formatted = format_ts(value)
    assert formatted == "0999-12-31T23:59:59.000000UTC+00:00"
    assert parse_ts(formatted) == value


UTC_2250 = datetime(2024, 3, 11, 22, 50, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-11T22:50:20.000000UTC+00:00", UTC_2250),
        ("2024-03-11T22:50:20UTC+00:00", UTC_2250),
        ("2024-03-11T23:50:20.008809CET+01:00", UTC_2250.replace(microsecond=8809)),
        ("2024-03-11T22:50:20.5UTC+00:00", UTC_2250.replace(microsecond=500000)),
        ("2024-03-11T17:50:20EST-05:00", UTC_2250),
        ("2024-03-11T22:50:20Z", UTC_2250),
        ("2024-03-11T22:50:20.123Z", UTC_2250.replace(microsecond=123000)),
        ("2024-03-11T22:50:20.123456789Z", UTC_2250.replace(microsecond=123456)),
        ("2024-03-11T23:50:20+01:00", UTC_2250),
        ("2024-03-11T23:50:20+0100", UTC_2250),
        ("2024-03-11T17:50:20.000001-05:00", UTC_2250.replace(microsecond=1)),
        ("2024-03-12T04:20:20+05:30", UTC_2250),
        ("2024-03-11 22:50:20+00:00", UTC_2250),
        ("2024-03-11T22:50:20UTC", UTC_2250),
        ("  2024-03-11T22:50:20Z  ", UTC_2250),
        ("2024-03-12T00:50:20+02:00", UTC_2250),
        ("2024-03-11T00:00:00-01:00", datetime(2024, 3, 11, 1, 0, 0, tzinfo=UTC)),
    ],
)
def test_parse_ts_reads_stored_original_and_iso_forms_as_utc(text, expected):
    parsed = parse_ts(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2024-03-11T22:50:20",
        "2024-03-11T22:50:20.123456",
        "2024-03-11 22:50:20",
        "2024-03-11T22:50:20CET",
        "2024-03-11T22:50:20.5PST",
    ],
)
def test_parse_ts_rejects_a_timestamp_without_an_offset(text):
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_ts(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "hello",
        "2024-03-11",
        "22:50:20Z",
        "2024-03-11T22:50Z",
        "2024/03/11T22:50:20Z",
        "24-03-11T22:50:20Z",
        "2024-03-11T22:50:20+01:00 trailing",
        "2024-03-11T22:50:20.Z",
        "2024-03-11T22:50:20.1234567890Z",
        "2024-03-11T22:50:20+1",
        "2024-13-11T22:50:20Z",
        "2024-02-30T22:50:20Z",
        "2023-02-29T00:00:00Z",
        "2024-03-11T24:00:00Z",
        "2024-03-11T22:60:00Z",
        "2024-03-11T22:50:60Z",
        "0000-01-01T00:00:00Z",
    ],
)
def test_parse_ts_rejects_garbage_with_value_error(text):
    with pytest.raises(ValueError, match="invalid timestamp"):
        parse_ts(text)


@pytest.mark.parametrize("value", [None, 20240311, b"2024-03-11T22:50:20Z"])
def test_parse_ts_rejects_non_text_with_value_error(value):
    with pytest.raises(ValueError):
        parse_ts(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_parse_ts_rejects_an_out_of_range_result_with_value_error(text):
    with pytest.raises(ValueError):
        parse_ts(text)


@pytest.mark.parametrize("text", ["2024-03-11T22:50:20+01:75", "2024-03-11T22:50:20+99:00"])
def test_parse_ts_rejects_an_out_of_range_offset(text):
    with pytest.raises(ValueError):
        parse_ts(text)


ROUND_TRIP_VALUES = [
    datetime(2024, 3, 11, 22, 50, 20, tzinfo=UTC),
    datetime(2024, 3, 11, 22, 50, 20, 8809, tzinfo=UTC),
    datetime(2024, 3, 11, 23, 50, 20, 999999, tzinfo=CET),
    # 02:30 happens twice in Warsaw on 2024-10-27: fold picks the first (CEST) or second (CET).
    datetime(2024, 10, 27, 2, 30, tzinfo=ZoneInfo("Europe/Warsaw")),
    datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Warsaw")),
    datetime(2000, 2, 29, 0, 0, 0, 1, tzinfo=EST),
    datetime(1000, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES)
def test_format_then_parse_gives_the_same_instant_in_utc(value):
    parsed = parse_ts(format_ts(value))
    # Compare in UTC: PEP 495 makes inter-zone == False for ambiguous local times.
    assert parsed == value.astimezone(UTC)
    assert parsed.timestamp() == value.timestamp()
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2024-03-11T22:50:20.000000UTC+00:00",
        "2024-03-11T22:50:20.008809UTC+00:00",
        "1999-12-31T23:59:59.999999UTC+00:00",
    ],
)
def test_parse_then_format_gives_the_same_text(text):
    assert format_ts(parse_ts(text)) == text


def test_format_ts_of_an_ambiguous_local_time_depends_on_fold():
    warsaw = ZoneInfo("Europe/Warsaw")
    first = datetime(2024, 10, 27, 2, 30, tzinfo=warsaw)
    second = datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=warsaw)
    assert format_ts(first) == "2024-10-27T00:30:00.000000UTC+00:00"
    assert format_ts(second) == "2024-10-27T01:30:00.000000UTC+00:00"


def test_format_ts_normalises_other_forms_to_the_stored_form():
    assert format_ts(parse_ts("2024-03-11T23:50:20.008809CET+01:00")) == (
        "2024-03-11T22:50:20.008809UTC+00:00"
    )
    assert format_ts(parse_ts("2024-03-11T22:50:20Z")) == "2024-03-11T22:50:20.000000UTC+00:00"


def test_text_order_of_formatted_values_is_time_order():
    base = datetime(2024, 3, 11, 22, 50, 20, tzinfo=UTC)
    values = [
        base,
        base + timedelta(microseconds=1),
        base + timedelta(microseconds=9),
        base + timedelta(microseconds=10),
        base + timedelta(microseconds=100000),
        base + timedelta(seconds=1),
        base + timedelta(seconds=9),
        base + timedelta(seconds=10),
        base + timedelta(hours=1),
        base + timedelta(days=1),
        base + timedelta(days=400),
        base - timedelta(microseconds=1),
        datetime(2024, 3, 11, 23, 0, 0, tzinfo=CET),  # 22:00 UTC: earlier than base
        datetime(2024, 3, 11, 18, 0, 0, tzinfo=EST),  # 23:00 UTC: later than base
        datetime(1000, 1, 1, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(9999, 12, 31, tzinfo=UTC),
    ]
    by_time = [format_ts(v) for v in sorted(values)]
    assert sorted(format_ts(v) for v in values) == by_time
    assert len(set(by_time)) == len(values)


def test_require_aware_converts_to_utc_and_names_what_is_naive():
    assert require_aware(datetime(2024, 3, 11, 23, 50, tzinfo=CET), "x") == datetime(
        2024, 3, 11, 22, 50, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="the start is a naive datetime"):
        require_aware(datetime(2024, 3, 11), "the start")
    with pytest.raises(TypeError):
        require_aware("2024-03-11", "x")  # type: ignore[arg-type]


T0 = datetime(2024, 3, 11, 22, 50, 20, tzinfo=UTC)


def test_manual_clock_starts_at_the_given_time_in_utc():
    clock = ManualClock(datetime(2024, 3, 11, 23, 50, 20, tzinfo=CET))
    assert clock.now() == T0
    assert clock.now().tzinfo is UTC


def test_manual_clock_rejects_a_naive_start():
    with pytest.raises(ValueError, match="naive"):
        ManualClock(datetime(2024, 3, 11, 22, 50, 20))


def test_manual_clock_advance_moves_forward_and_returns_the_new_time():
    clock = ManualClock(T0)
    assert clock.advance(timedelta(minutes=5)) == T0 + timedelta(minutes=5)
    assert clock.now() == T0 + timedelta(minutes=5)
    assert clock.advance(1.5) == T0 + timedelta(minutes=5, seconds=1.5)
    assert clock.now() == T0 + timedelta(minutes=5, seconds=1.5)
    assert clock.advance(0) == T0 + timedelta(minutes=5, seconds=1.5)


def test_manual_clock_set_moves_to_the_given_time():
    clock = ManualClock(T0)
    later = T0 + timedelta(days=3)
    clock.set(later)
    assert clock.now() == later
    clock.set(later)  # same time: allowed
    assert clock.now() == later


def test_manual_clock_refuses_to_go_backwards():
    clock = ManualClock(T0)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(T0 - timedelta(microseconds=1))
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-0.5)
    assert clock.now() == T0


def test_manual_clock_set_rejects_a_naive_datetime():
    clock = ManualClock(T0)
    with pytest.raises(ValueError, match="naive"):
        clock.set(datetime(2030, 1, 1))
    assert clock.now() == T0


def test_manual_clock_calls_listeners_after_each_move():
    clock = ManualClock(T0)
    seen: list[datetime] = []
    clock.on_change(lambda: seen.append(clock.now()))
    clock.advance(10)
    clock.set(T0 + timedelta(minutes=1))
    assert seen == [T0 + timedelta(seconds=10), T0 + timedelta(minutes=1)]


def test_manual_clock_does_not_call_listeners_when_a_move_is_refused():
    clock = ManualClock(T0)
    calls: list[int] = []
    clock.on_change(lambda: calls.append(1))
    with pytest.raises(ValueError):
        clock.set(T0 - timedelta(seconds=1))
    assert calls == []


def test_manual_clock_seconds_until_is_zero_for_now_and_the_past():
    clock = ManualClock(T0)
    assert clock.seconds_until(T0) == 0.0
    assert clock.seconds_until(T0 - timedelta(hours=1)) == 0.0
    assert clock.seconds_until(T0 + timedelta(seconds=1)) > 0.0
