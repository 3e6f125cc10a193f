"""Times a newcomer types: ``--at`` without seconds, and a time without a zone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

import ppacer
from ppacer.testing import ManualClock

T0 = datetime(2024, 3, 11, 12, 0, tzinfo=UTC)


@ppacer.task
def noop(ctx: ppacer.TaskContext) -> None:
    ctx.logger.info("ran")


def _registry() -> ppacer.Registry:
    every_hour = ppacer.FixedSchedule(T0, timedelta(hours=1))
    hourly = ppacer.Dag("hourly", schedule=every_hour, root=ppacer.Node(noop))
    return ppacer.Registry([hourly.done()])


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2024-03-11T12:00Z", "2024-03-11T12:00:00.000000UTC+00:00"),
        ("2024-03-11T13:30+01:00", "2024-03-11T12:30:00.000000UTC+00:00"),
        ("2024-03-11 14:00Z", "2024-03-11T14:00:00.000000UTC+00:00"),
        ("2024-03-11T15:00:00.000000UTC+00:00", "2024-03-11T15:00:00.000000UTC+00:00"),
    ],
)
def test_at_takes_iso_times_with_or_without_seconds(start_local, ppacer_cli, given, stored):
    runner = start_local(_registry(), clock=ManualClock(T0 + timedelta(days=1)))
    result = ppacer_cli("trigger", "hourly", "--at", given, "--json", "--url", runner.url)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["execTs"] == stored


@pytest.mark.parametrize(
    ("given", "hint"),
    [
        ("2024-03-11T12:00", "2024-03-11T12:00Z"),
        ("2024-03-11 12:00:30", "2024-03-11 12:00:30Z"),
        ("2024-03-11", "2024-03-11T00:00Z"),
    ],
)
def test_a_time_without_a_zone_says_so_with_an_iso_hint(ppacer_cli, given, hint):
    # Refused before any scheduler is asked: none listens at this URL.
    url = ("--url", "http://127.0.0.1:9")
    result = ppacer_cli("trigger", "hourly", "--at", given, *url)
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert f"Invalid value for --at: '{given}' has no time zone" in message
    assert f"e.g. {hint} for UTC" in message
    assert "UTC+00:00" not in message  # not the stored (Go) layout
    backfill = ppacer_cli("backfill", "hourly", "--from", given, "--to", "2024-03-12T00:00Z", *url)
    assert backfill.exit_code == 2 and f"e.g. {hint} for UTC" in " ".join(backfill.stderr.split())


def test_a_time_that_is_not_one_gets_an_iso_example(ppacer_cli):
    result = ppacer_cli("trigger", "hourly", "--at", "tomorrow noon", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "'tomorrow noon' is not a time" in message
    assert "e.g. 2024-03-11T12:00Z" in message and "UTC+00:00" not in message
