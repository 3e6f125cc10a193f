"""One name for a schedule everywhere, and ``ppacer schedule`` in times people read."""

from __future__ import annotations

import html
import json
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

import ppacer
from ppacer.dag.describe import describe_schedule
from ppacer.testing import ManualClock

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@ppacer.task
def noop(ctx: ppacer.TaskContext) -> None:
    ctx.logger.info("ran")


#: Schedules and their words: what `ppacer dags list` and the UI both say.
WORDS = [
    (ppacer.FixedSchedule(T0, timedelta(minutes=1)), "every minute"),
    (ppacer.FixedSchedule(T0, timedelta(seconds=10)), "every 10 seconds"),
    (ppacer.FixedSchedule(T0, timedelta(milliseconds=500)), "every 500 milliseconds"),
    (ppacer.FixedSchedule(T0, timedelta(hours=1, minutes=30)), "every 90 minutes"),
    (ppacer.FixedSchedule(T0, timedelta(days=1)), "every day"),
    (ppacer.CronSchedule("* * * * *", tz="UTC"), "every minute (UTC)"),
    (ppacer.CronSchedule("*/15 * * * *", tz="UTC"), "every 15 minutes (UTC)"),
    (ppacer.CronSchedule("30 2 * * *", tz="Europe/Warsaw"), "every day at 02:30 (Europe/Warsaw)"),
    (
        ppacer.CronSchedule("*/15 9-17 * * MON-FRI", tz="Europe/Warsaw"),
        "every 15 minutes from 09:00 to 17:45, on weekdays (Europe/Warsaw)",
    ),
    (ppacer.CronSchedule("0 9,17 * * 1-5", tz="UTC"), "on weekdays at 09:00 and 17:00 (UTC)"),
    (ppacer.CronSchedule("0 0,12 * * *", tz="UTC"), "every day at 00:00 and 12:00 (UTC)"),
    (ppacer.CronSchedule("5 * * * *", tz="UTC"), "every hour at :05 (UTC)"),
    (ppacer.CronSchedule("0 */6 * * *", tz="UTC"), "every 6 hours at :00 (UTC)"),
    (ppacer.CronSchedule("0 8 * * MON,FRI", tz="UTC"), "every Monday and Friday at 08:00 (UTC)"),
    (ppacer.CronSchedule("0 0 * * 0,6", tz="UTC"), "on weekends at midnight (UTC)"),
    (
        ppacer.CronSchedule("0 6 1,15 * *", tz="UTC"),
        "on days 1 and 15 of every month at 06:00 (UTC)",
    ),
    (ppacer.CronSchedule("@daily", tz="UTC"), "every day at midnight (UTC)"),
    (ppacer.CronSchedule("@weekly", tz="UTC"), "every Sunday at midnight (UTC)"),
    (ppacer.CronSchedule("@yearly", tz="UTC"), "every 1 January at midnight (UTC)"),
    (ppacer.CronSchedule("*/10 * * * * *", tz="UTC"), "every 10 seconds (UTC)"),
    # Every 7 minutes it is not: :56 is followed by :00.
    (ppacer.CronSchedule("*/7 * * * *", tz="UTC"), "cron */7 * * * * (UTC)"),
    (
        ppacer.UnionSchedule(
            ppacer.CronSchedule("0 9 * * *", tz="UTC"),
            ppacer.FixedSchedule(T0, timedelta(hours=1)),
        ),
        "every day at 09:00 (UTC) and every hour",
    ),
    (None, "manual only"),
]


@pytest.mark.parametrize(("schedule", "words"), WORDS, ids=[w for _, w in WORDS])
def test_a_schedule_and_its_stored_text_read_the_same(schedule, words):
    assert describe_schedule(schedule) == words
    # What a client has: the text the API sends (and the original stores).
    assert describe_schedule(str(schedule) if schedule is not None else None) == words


def test_a_cron_without_a_zone_names_the_default_one():
    cron = ppacer.CronSchedule("30 2 * * *")
    assert describe_schedule(cron) == "every day at 02:30"
    assert describe_schedule(cron, "Europe/Warsaw") == "every day at 02:30 (Europe/Warsaw)"
    assert describe_schedule(str(cron), "Europe/Warsaw") == "every day at 02:30 (Europe/Warsaw)"


def _registry() -> ppacer.Registry:
    dags = [
        ppacer.Dag(f"dag{i:02d}", schedule=schedule, root=ppacer.Node(noop)).done()
        for i, (schedule, _) in enumerate(WORDS)
    ]
    return ppacer.Registry(dags)


def test_dags_list_and_show_say_the_schedule_in_words(start_local, ppacer_cli):
    runner = start_local(_registry(), clock=ManualClock(datetime(2024, 3, 11, tzinfo=UTC)))
    url = ("--url", runner.url)
    listed = ppacer_cli("dags", "list", *url)
    assert listed.exit_code == 0, listed.output
    rows = {
        line.split("│")[0].strip(): line.split("│")[1].strip()
        for line in listed.output.splitlines()
        if "│" in line
    }
    assert rows == {f"dag{i:02d}": words for i, (_, words) in enumerate(WORDS)}
    shown = ppacer_cli("dags", "show", "dag08", *url)
    assert "schedule: every 15 minutes from 09:00 to 17:45, on weekdays (Europe/Warsaw)" in (
        shown.output
    )
    # JSON keeps the stored form, for scripts.
    first = json.loads(ppacer_cli("dags", "list", "--json", *url).output)[0]
    assert first["schedule"] == "FixedSchedule: 1m0s"


def test_the_ui_names_each_schedule_as_the_cli_does(start_local, ppacer_cli):
    runner = start_local(_registry(), clock=ManualClock(datetime(2024, 3, 11, tzinfo=UTC)))
    with urllib.request.urlopen(f"{runner.url}/ui/dags", timeout=10) as answer:
        page = html.unescape(answer.read().decode())
    missing = [words for _, words in WORDS if words not in page]
    assert missing == []


def test_a_cron_given_without_a_zone_names_the_schedulers_zone(start_local, ppacer_cli):
    registry = ppacer.Registry(
        [ppacer.Dag("nightly", schedule="30 2 * * *", root=ppacer.Node(noop)).done()]
    )
    runner = start_local(
        registry,
        clock=ManualClock(datetime(2024, 3, 29, 12, tzinfo=UTC)),
        config=ppacer.Config(timezone="Europe/Warsaw"),
    )
    shown = ppacer_cli("dags", "show", "nightly", "--url", runner.url)
    assert "schedule: every day at 02:30 (Europe/Warsaw)" in shown.output
    table = ppacer_cli("schedule", "nightly", "-n", "1", "--url", runner.url).output
    assert _cells(table) == [["2024-03-30 02:30 CET", "2024-03-30 01:30 UTC"]]


def test_a_fixed_schedule_shows_the_schedulers_zone_by_name(start_local, ppacer_cli):
    every_hour = ppacer.FixedSchedule(T0, timedelta(hours=1))
    registry = ppacer.Registry(
        [ppacer.Dag("hourly", schedule=every_hour, root=ppacer.Node(noop)).done()]
    )
    runner = start_local(
        registry,
        clock=ManualClock(datetime(2024, 3, 29, 12, 10, tzinfo=UTC)),
        config=ppacer.Config(timezone="Europe/Warsaw"),
    )
    table = ppacer_cli("schedule", "hourly", "-n", "1", "--url", runner.url).output
    assert "local (Europe/Warsaw)" in table
    assert _cells(table) == [["2024-03-29 14:00 CET", "2024-03-29 13:00 UTC"]]


def test_a_cron_with_its_own_zone_shows_that_zone_on_a_utc_scheduler(start_local, ppacer_cli):
    warsaw = ppacer.CronSchedule("30 2 * * *", tz="Europe/Warsaw")
    registry = ppacer.Registry(
        [ppacer.Dag("nightly", schedule=warsaw, root=ppacer.Node(noop)).done()]
    )
    runner = start_local(registry, clock=ManualClock(datetime(2024, 3, 29, 12, tzinfo=UTC)))
    shown = json.loads(ppacer_cli("dags", "show", "nightly", "--json", "--url", runner.url).output)
    assert shown["timezone"] == "UTC"  # the scheduler's; the cron's own zone wins
    table = ppacer_cli("schedule", "nightly", "-n", "1", "--url", runner.url).output
    assert "local (Europe/Warsaw)" in table
    assert _cells(table) == [["2024-03-30 02:30 CET", "2024-03-30 01:30 UTC"]]


def _cells(output: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")] for line in output.splitlines() if "│" in line]


def test_schedule_prints_local_times_with_the_zone_and_utc(start_local, ppacer_cli):
    warsaw = ppacer.CronSchedule("30 2 * * *", tz="Europe/Warsaw")
    every_hour = ppacer.FixedSchedule(T0, timedelta(hours=1))
    registry = ppacer.Registry(
        [
            ppacer.Dag("nightly", schedule=warsaw, root=ppacer.Node(noop)).done(),
            ppacer.Dag("hourly", schedule=every_hour, root=ppacer.Node(noop)).done(),
        ]
    )
    # Before the spring-forward night of 2024-03-31 in Warsaw: 02:30 does not exist then.
    runner = start_local(
        registry,
        clock=ManualClock(datetime(2024, 3, 29, 12, 10, tzinfo=UTC)),
        config=ppacer.Config(timezone="Europe/Warsaw"),
    )
    url = ("--url", runner.url)
    result = ppacer_cli("schedule", "nightly", "-n", "3", *url)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "nightly: every day at 02:30 (Europe/Warsaw); the next 3 run times"
    assert "local (Europe/Warsaw)" in lines[1] and "UTC" in lines[1]
    assert _cells(result.output) == [
        ["2024-03-30 02:30 CET", "2024-03-30 01:30 UTC"],
        ["2024-03-31 03:00 CEST", "2024-03-31 01:00 UTC"],  # the first instant after the gap
        ["2024-04-01 02:30 CEST", "2024-04-01 00:30 UTC"],
    ]
    # A fixed schedule's points in the scheduler's zone: its name, or at least its offset.
    hourly = _cells(ppacer_cli("schedule", "hourly", "-n", "1", *url).output)
    assert hourly[0][1] == "2024-03-29 13:00 UTC"
    assert hourly[0][0] in ("2024-03-29 14:00 CET", "2024-03-29 14:00 UTC+01:00")
    # --json keeps the API's answer.
    points = json.loads(ppacer_cli("schedule", "nightly", "-n", "1", "--json", *url).output)
    assert points == [{"utc": "2024-03-30T01:30:00.000000UTC+00:00", "local": points[0]["local"]}]
