"""Pause, catch-up after downtime, max active runs, manual runs, backfill, clear and mark.

Real scheduler and executor; schedule time comes from a ManualClock, so days pass in
milliseconds and nothing sleeps.
"""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta

import pytest

import ppacer
from ppacer.errors import ConflictError, InvalidInputError
from ppacer.testing import ManualClock, schedule_points
from ppacer.timeutils import format_ts, parse_ts
from tests.conftest import Recorder, query, wait_for, wait_run_finished
from tests.e2e.test_runs import Gate, Note, manual_dag

T0 = datetime(2024, 3, 11, 12, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def hourly(dag_id: str, recorder: Recorder, catch_up: bool = False) -> ppacer.Dag:
    return ppacer.Dag(
        dag_id,
        schedule=ppacer.FixedSchedule(T0, HOUR),
        root=ppacer.Node(Note("t", recorder)),
        catch_up=catch_up,
    ).done()


def exec_times(db, dag_id: str) -> list[datetime]:
    rows = query(db, "SELECT ExecTs FROM dagruns WHERE DagId=? ORDER BY ExecTs", (dag_id,))
    return [parse_ts(r["ExecTs"]) for r in rows]


@pytest.mark.parametrize("catch_up", [True, False])
def test_three_days_of_downtime(start_local, db_paths, recorder, catch_up):
    db = db_paths[0]
    clock = ManualClock(T0 + timedelta(minutes=30))
    runner = start_local(ppacer.Registry([hourly("h", recorder, catch_up)]), clock=clock)
    clock.advance(HOUR)  # 13:30: the 13:00 point is due
    wait_run_finished(db, "h", 1)
    runner.stop()

    back = T0 + timedelta(days=3, minutes=30)  # three days later, at 12:30
    start_local(ppacer.Registry([hourly("h", recorder, catch_up)]), clock=ManualClock(back))
    if catch_up:
        expected = [T0 + HOUR * i for i in range(1, 72 + 1)]  # 13:00 day 0 .. 12:00 day 3
        wait_run_finished(db, "h", len(expected), timeout_s=60)
        assert exec_times(db, "h") == expected
    else:
        wait_run_finished(db, "h", 2)
        assert exec_times(db, "h") == [T0 + HOUR, T0 + timedelta(days=3)]
        (skipped,) = query(db, "SELECT * FROM schedules WHERE Event='SKIPPED'")
        assert parse_ts(skipped["ScheduleTs"]) == T0 + 2 * HOUR
        assert parse_ts(skipped["NextScheduleTs"]) == T0 + timedelta(days=3)
    # One row per decision, not one per missed point, when skipping.
    rows = query(db, "SELECT COUNT(*) AS n FROM schedules")[0]["n"]
    assert rows == (72 if catch_up else 3)


def test_paused_dag_creates_no_runs_and_catches_up_on_unpause(start_local, db_paths, recorder):
    db = db_paths[0]
    clock = ManualClock(T0 + timedelta(minutes=30))
    runner = start_local(ppacer.Registry([hourly("p", recorder, catch_up=True)]), clock=clock)
    runner.client.pause_dag("p")
    clock.advance(3 * HOUR)  # 15:30
    wait_for(lambda: runner.scheduler.watcher and runner.scheduler.watcher.next_due() is None)
    assert exec_times(db, "p") == []
    paused = query(db, "SELECT * FROM dagpauses")
    assert [(r["DagId"], r["IsPaused"]) for r in paused] == [("p", 1)]
    shown = runner.client.get_dag("p")
    assert (shown["paused"], shown["nextScheduleTs"]) == (True, None)
    runner.client.unpause_dag("p")
    wait_run_finished(db, "p", 3)
    shown = runner.client.get_dag("p")
    assert shown["paused"] is False and parse_ts(shown["nextScheduleTs"]) == T0 + 4 * HOUR
    assert exec_times(db, "p") == [T0 + HOUR, T0 + 2 * HOUR, T0 + 3 * HOUR]


def test_pause_survives_a_restart(start_local, db_paths, recorder):
    db = db_paths[0]
    clock = ManualClock(T0 + timedelta(minutes=30))
    runner = start_local(ppacer.Registry([hourly("p", recorder)]), clock=clock)
    runner.client.pause_dag("p")
    runner.stop()
    clock2 = ManualClock(T0 + timedelta(minutes=31))
    runner = start_local(ppacer.Registry([hourly("p", recorder)]), clock=clock2)
    clock2.advance(2 * HOUR)
    assert runner.scheduler.watcher is not None
    assert runner.scheduler.watcher.next_due() is None
    assert exec_times(db, "p") == []


def test_max_active_runs_queues_runs_in_order(start_local, db_paths, recorder):
    gate = threading.Event()
    dag = ppacer.Dag(
        "one_at_a_time", root=ppacer.Node(Gate("g", recorder, gate)), max_active_runs=1
    ).done()
    runner = start_local(ppacer.Registry([dag]))
    run_ids = [runner.client.trigger_dag_run("one_at_a_time")["runId"] for _ in range(3)]
    wait_for(lambda: recorder.task_ids() == ["g"], what="first run started")
    statuses = [
        r["Status"] for r in query(db_paths[0], "SELECT Status FROM dagruns ORDER BY RunId")
    ]
    assert statuses[1:] == ["READY_TO_SCHEDULE", "READY_TO_SCHEDULE"]
    gate.set()
    runs = wait_run_finished(db_paths[0], "one_at_a_time", 3)
    assert [r["RunId"] for r in runs] == run_ids
    for earlier, later in itertools.pairwise(runs):
        assert later["InsertTs"] <= earlier["StatusUpdateTs"]
        tasks = query(
            db_paths[0], "SELECT InsertTs FROM dagruntasks WHERE ExecTs=?", (later["ExecTs"],)
        )
        assert tasks[0]["InsertTs"] >= earlier["StatusUpdateTs"]


def test_trigger_for_a_logical_time_and_duplicate_is_409(start_local, db_paths, recorder):
    runner = start_local(ppacer.Registry([manual_dag("m", ppacer.Node(Note("a", recorder)))]))
    at = datetime(2024, 1, 1, 6, 0, tzinfo=UTC)
    answer = runner.client.trigger_dag_run("m", {"x": 1}, exec_ts=at)
    assert answer["execTs"] == format_ts(at)
    with pytest.raises(ConflictError, match="already has a run"):
        runner.client.trigger_dag_run("m", exec_ts=at)
    (run,) = wait_run_finished(db_paths[0], "m")
    assert parse_ts(run["ExecTs"]) == at
    history = runner.client.dag_run_history(run["RunId"])["items"]
    assert [(e["action"], e["actor"]) for e in history] == [("TRIGGER", "api")]


def test_backfill_runs_each_point_once_in_order_and_resumes(start_local, db_paths, recorder):
    db = db_paths[0]
    gate = threading.Event()

    def dags() -> ppacer.Registry:
        sched = ppacer.FixedSchedule(T0, HOUR)
        root = ppacer.Node(Gate("g", recorder, gate))
        return ppacer.Registry([ppacer.Dag("bf", schedule=sched, root=root).done()])

    clock = ManualClock(T0 + timedelta(days=30, minutes=30))  # no regular point due
    runner = start_local(dags(), clock=clock, stop_timeout_s=0.2)
    start, end = T0 + timedelta(days=1), T0 + timedelta(days=1, hours=9)  # 10 points
    backfill = runner.client.backfill("bf", start, end, max_active_runs=2)
    wait_for(lambda: len(exec_times(db, "bf")) == 2, what="two backfill runs")
    runner.stop()  # interrupted with 2 of 10 runs created, both running
    assert len(exec_times(db, "bf")) == 2

    gate.set()
    runner = start_local(dags(), clock=clock)
    wait_for(
        lambda: runner.client.get_backfill(backfill["backfillId"])["status"] == "SUCCESS",
        30,
        "backfill SUCCESS",
    )
    expected = [start + HOUR * i for i in range(10)]
    assert exec_times(db, "bf") == expected
    assert expected == schedule_points(ppacer.FixedSchedule(T0, HOUR), start - HOUR, end)
    runs = query(db, "SELECT RunId, Status, ExecTs FROM dagruns ORDER BY RunId")
    assert [parse_ts(r["ExecTs"]) for r in runs] == expected  # created in order
    assert {r["Status"] for r in runs} == {"SUCCESS"}
    events = query(db, "SELECT Event FROM schedules")
    assert {e["Event"] for e in events} == {"OUT_OF_BAND"}


def test_backfill_of_manual_dag_or_reversed_range_is_refused(start_local, recorder):
    runner = start_local(ppacer.Registry([manual_dag("m", ppacer.Node(Note("a", recorder)))]))
    with pytest.raises(InvalidInputError, match="no schedule"):
        runner.client.backfill("m", T0, T0 + HOUR)


def test_clear_reruns_the_task_and_its_downstream(start_local, db_paths, recorder):
    root = ppacer.Node(Note("a", recorder))
    root.next(Note("b", recorder)).next(Note("c", recorder))
    root.next(Note("side", recorder))
    runner = start_local(ppacer.Registry([manual_dag("clr", root)]))
    runner.client.trigger_dag_run("clr")
    (run,) = wait_run_finished(db_paths[0], "clr")
    cleared = runner.client.clear_task("clr", run["ExecTs"], "b")
    assert cleared == ["b", "c"]
    wait_for(
        lambda: (
            query(db_paths[0], "SELECT COUNT(*) AS n FROM dagruntasks WHERE Retry=1")[0]["n"] == 2
            and wait_run_finished(db_paths[0], "clr")
        ),
        what="cleared tasks re-run",
    )
    rows = query(
        db_paths[0], "SELECT TaskId, Retry, Status FROM dagruntasks ORDER BY TaskId, Retry"
    )
    assert [(r["TaskId"], r["Retry"], r["Status"]) for r in rows] == [
        ("a", 0, "SUCCESS"),
        ("b", 0, "SUCCESS"),
        ("b", 1, "SUCCESS"),
        ("c", 0, "SUCCESS"),
        ("c", 1, "SUCCESS"),
        ("side", 0, "SUCCESS"),
    ]
    history = runner.client.dag_run_history(run["RunId"])
    assert history["total"] == 2
    assert [(h["action"], h["taskId"]) for h in history["items"]] == [
        ("TRIGGER", None),
        ("CLEAR", "b"),
    ]
    page = runner.client.dag_run_history(run["RunId"], limit=1, offset=1)
    assert (page["total"], [h["action"] for h in page["items"]]) == (2, ["CLEAR"])


def test_mark_success_lets_downstream_run(start_local, db_paths, recorder):
    root = ppacer.Node(Note("bad", recorder, fail_times=99))
    root.next(Note("after", recorder))
    runner = start_local(ppacer.Registry([manual_dag("mk", root)]))
    runner.client.trigger_dag_run("mk")
    (run,) = wait_run_finished(db_paths[0], "mk")
    assert run["Status"] == "FAILED"
    runner.client.mark_task("mk", run["ExecTs"], "bad", "SUCCESS")
    wait_for(
        lambda: query(db_paths[0], "SELECT Status FROM dagruns")[0]["Status"] == "SUCCESS",
        what="run SUCCESS after mark",
    )
    rows = query(
        db_paths[0], "SELECT TaskId, Retry, Status FROM dagruntasks ORDER BY TaskId, Retry"
    )
    assert [(r["TaskId"], r["Retry"], r["Status"]) for r in rows] == [
        ("after", 0, "UPSTREAM_FAILED"),
        ("after", 1, "SUCCESS"),
        ("bad", 0, "SUCCESS"),
    ]
    history = runner.client.dag_run_history(run["RunId"])["items"]
    assert [h["action"] for h in history] == ["TRIGGER", "MARK_SUCCESS"]
    with pytest.raises(InvalidInputError, match="SUCCESS or FAILED"):
        runner.client.mark_task("mk", run["ExecTs"], "bad", "RUNNING")


def test_schedule_preview_in_utc_and_the_scheduler_zone(start_local, recorder):
    config = ppacer.Config(timezone="Europe/Warsaw")
    clock = ManualClock(T0)
    runner = start_local(
        ppacer.Registry([hourly("pv", recorder)]), clock=clock, config=config, with_executor=False
    )
    points = runner.client.schedule_preview("pv", 3)
    assert [p["utc"] for p in points] == [format_ts(T0 + HOUR * i) for i in (1, 2, 3)]
    assert points[0]["local"] == "2024-03-11T14:00:00+01:00"


@pytest.mark.parametrize(
    ("expr", "week_start", "expected"),
    [
        # Hourly keeps its pace in absolute time: every UTC hour of the fall-back week.
        ("0 * * * *", datetime(2024, 10, 24, tzinfo=UTC), [HOUR * i for i in range(7 * 24 + 1)]),
        # A fixed local time: once a day; on 2024-03-31 02:30 does not exist -> 03:00 CEST.
        (
            "30 2 * * *",
            datetime(2024, 3, 28, tzinfo=UTC),
            [timedelta(hours=1, minutes=30) + timedelta(days=d) for d in range(3)]
            + [timedelta(days=3, hours=1)]
            + [timedelta(minutes=30) + timedelta(days=d) for d in range(4, 7)],
        ),
    ],
)
def test_cron_dag_over_a_dst_week_creates_exactly_the_expected_runs(
    start_local, db_paths, recorder, expr, week_start, expected
):
    dag = ppacer.Dag("dst", schedule=expr, root=ppacer.Node(Note("t", recorder))).done()
    clock = ManualClock(week_start)
    config = ppacer.Config(timezone="Europe/Warsaw")  # the cron has no zone: the scheduler's
    start_local(ppacer.Registry([dag]), clock=clock, config=config)
    clock.advance(timedelta(days=7))
    wait_run_finished(db_paths[0], "dst", len(expected), timeout_s=60)
    assert exec_times(db_paths[0], "dst") == [week_start + e for e in expected]
