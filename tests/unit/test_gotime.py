"""Time in the original Go ppacer's forms: its timestamp text, durations and UI timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ppacer.gotime import go_duration, go_timestamp, timestamp_forms, ui_timestamp


@pytest.mark.parametrize(
    ("stored", "go"),
    [
        ("2024-03-11T22:50:42.120000UTC+00:00", "2024-03-11T22:50:42.12UTC+00:00"),
        ("2024-03-11T22:50:42.000000UTC+00:00", "2024-03-11T22:50:42UTC+00:00"),
        ("2024-03-11T22:50:42.123456UTC+00:00", "2024-03-11T22:50:42.123456UTC+00:00"),
        ("2024-03-11T22:50:42.100100UTC+00:00", "2024-03-11T22:50:42.1001UTC+00:00"),
    ],
)
def test_go_writes_timestamps_with_trailing_zeros_trimmed(stored: str, go: str) -> None:
    assert go_timestamp(stored) == go
    assert timestamp_forms(stored) == ((stored,) if go == stored else (stored, go))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (1e-7, "100ns"),
        (1.5e-6, "1.5µs"),
        (0.0005, "500µs"),
        (0.071751, "71.751ms"),
        (0.1, "100ms"),
        (1.000001, "1.000001s"),
        (60, "1m0s"),
        (62.5, "1m2.5s"),
        (3600, "1h0m0s"),
        (2 * 3600 + 3 * 60 + 4.000005, "2h3m4.000005s"),
        (-1.5, "-1.5s"),
    ],
)
def test_durations_read_as_go_prints_them(seconds: float, text: str) -> None:
    # Expected values are what Go's time.Duration.String() prints for these durations.
    assert go_duration(seconds) == text


def test_duration_from_a_timedelta_is_exact() -> None:
    assert go_duration(timedelta(minutes=1, microseconds=2)) == "1m0.000002s"


def test_ui_timestamps_show_the_time_alone_on_the_same_day() -> None:
    now = datetime(2024, 3, 11, 23, 0, tzinfo=UTC)
    today = ui_timestamp("2024-03-11T22:50:42.120000UTC+00:00", UTC, now)
    assert today == {
        "toDisplay": "22:50:42",
        "date": "2024-03-11",
        "time": "22:50:42.12",
        "timezone": "UTC",
    }
    # In the scheduler's zone (CET in March), another day: the date is shown too.
    warsaw = ui_timestamp("2024-03-11T22:50:42.000000UTC+00:00", ZoneInfo("Europe/Warsaw"), now)
    assert warsaw == {
        "toDisplay": "2024-03-11 23:50:42",
        "date": "2024-03-11",
        "time": "23:50:42",
        "timezone": "CET",
    }
    assert ui_timestamp(None, UTC, now)["date"] == "0001-01-01"  # Go's zero time
