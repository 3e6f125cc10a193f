"""End to end: a real scheduler HTTP server, a real executor, real SQLite files."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import ppacer
from ppacer.executor.client import Client
from ppacer.timeutils import ManualClock, parse_ts
from tests.conftest import Recorder, query, wait_for, wait_run_finished

MANUAL_ONLY = None


class Note(ppacer.BaseTask):
    """Records its id (and its context) in a recorder; optionally fails."""

    def __init__(self, task_id: str, recorder: Recorder, fail_times: int = 0) -> None:
        super().__init__(task_id)
        self.recorder = recorder
        self.fail_times = fail_times
        self.calls = 0
        self.lock = threading.Lock()

    def execute(self, ctx: ppacer.TaskContext) -> None:
        with self.lock:
            self.calls += 1
            call = self.calls
        self.recorder.add(
            self.task_id, {"retry": ctx.retry, "params": dict(ctx.params), "run_id": ctx.run_id}
        )
        ctx.logger.info("ran %s", self.task_id, extra={"call": call})
        if call <= self.fail_times:
            raise RuntimeError(f"{self.task_id} boom #{call}")


def manual_dag(dag_id: str, root: ppacer.Node) -> ppacer.Dag:
    return ppacer.Dag(dag_id).add_root(root).done()


def tasks_of(db: Path, dag_id: str) -> list[Any]:
    return query(
        db, "SELECT * FROM dagruntasks WHERE DagId=? ORDER BY InsertTs, TaskId, Retry", (dag_id,)
    )


def test_diamond_runs_in_dependency_order(start_local, db_paths, recorder):
    root = ppacer.Node(Note("1", recorder))
    root.next_async_and_merge([Note(t, recorder) for t in ("21", "22", "23")], Note("3", recorder))
    runner = start_local(ppacer.Registry([manual_dag("diamond", root)]))
    runner.client.trigger_dag_run("diamond")
    db = db_paths[0]
    (run,) = wait_run_finished(db, "diamond")
    assert run["Status"] == "SUCCESS"
    rows = {r["TaskId"]: r for r in tasks_of(db, "diamond")}
    assert set(rows) == {"1", "21", "22", "23", "3"}
    assert all(r["Status"] == "SUCCESS" for r in rows.values())
    for mid in ("21", "22", "23"):
        assert rows[mid]["InsertTs"] >= rows["1"]["StatusUpdateTs"]
        assert rows["3"]["InsertTs"] >= rows[mid]["StatusUpdateTs"]
    order = recorder.task_ids()
    assert order[0] == "1" and order[-1] == "3"


def test_chain_of_100_tasks_succeeds_in_order(start_local, db_paths, recorder):
    root = ppacer.Node(Note("t000", recorder))
    node = root
    for i in range(1, 100):
        node = node.next(Note(f"t{i:03d}", recorder))
    runner = start_local(ppacer.Registry([manual_dag("chain100", root)]))
    runner.client.trigger_dag_run("chain100")
    (run,) = wait_run_finished(db_paths[0], "chain100", timeout_s=60)
    assert run["Status"] == "SUCCESS"
    assert recorder.task_ids() == [f"t{i:03d}" for i in range(100)]
    rows = tasks_of(db_paths[0], "chain100")
    assert len(rows) == 100 and {r["Status"] for r in rows} == {"SUCCESS"}


def test_failed_task_marks_downstream_upstream_failed_and_sibling_branch_succeeds(
    start_local, db_paths, recorder
):
    root = ppacer.Node(Note("root", recorder))
    bad = root.next(Note("bad", recorder, fail_times=99))
    bad.next(Note("after_bad", recorder)).next(Note("after_after_bad", recorder))
    root.next(Note("good", recorder)).next(Note("after_good", recorder))
    runner = start_local(ppacer.Registry([manual_dag("branches", root)]))
    runner.client.trigger_dag_run("branches")
    db = db_paths[0]
    (run,) = wait_run_finished(db, "branches")
    assert run["Status"] == "FAILED"
    status = {r["TaskId"]: r["Status"] for r in tasks_of(db, "branches")}
    assert status == {
        "root": "SUCCESS",
        "bad": "FAILED",
        "after_bad": "UPSTREAM_FAILED",
        "after_after_bad": "UPSTREAM_FAILED",
        "good": "SUCCESS",
        "after_good": "SUCCESS",
    }
    (err,) = query(db, "SELECT * FROM dagruntaskerrors WHERE DagId='branches'")
    assert err["TaskId"] == "bad" and err["Error"] == "RuntimeError: bad boom #1"
    assert "after_bad" not in recorder.task_ids()


def test_task_failing_twice_with_three_retries_succeeds_after_delays(
    start_local, db_paths, recorder
):
    delay_s = 0.3
    cfg = ppacer.TaskConfig(retries=3, retry_delay_s=delay_s)
    root = ppacer.Node(Note("flaky", recorder, fail_times=2), cfg)
    runner = start_local(ppacer.Registry([manual_dag("retries", root)]))
    runner.client.trigger_dag_run("retries")
    db = db_paths[0]
    (run,) = wait_run_finished(db, "retries")
    assert run["Status"] == "SUCCESS"
    rows = tasks_of(db, "retries")
    assert [(r["Retry"], r["Status"]) for r in rows] == [
        (0, "FAILED_PENDING_RETRY"),
        (1, "FAILED_PENDING_RETRY"),
        (2, "SUCCESS"),
    ]
    for failed, retried in itertools.pairwise(rows):
        gap = parse_ts(retried["InsertTs"]) - parse_ts(failed["StatusUpdateTs"])
        assert gap >= timedelta(seconds=delay_s)
    errors = query(db, "SELECT Retry, Error FROM dagruntaskerrors ORDER BY Retry")
    assert [(e["Retry"], e["Error"]) for e in errors] == [
        (0, "RuntimeError: flaky boom #1"),
        (1, "RuntimeError: flaky boom #2"),
    ]
    logs = query(
        db_paths[1],
        "SELECT Retry, Level, Message FROM tasklogs WHERE TaskId='flaky' ORDER BY InsertTs",
    )
    assert {r["Retry"] for r in logs} == {0, 1, 2}
    assert any(r["Level"] == "ERROR" and "flaky boom #1" in r["Message"] for r in logs)


def test_trigger_params_reach_task_context(start_local, db_paths, recorder):
    runner = start_local(
        ppacer.Registry([manual_dag("params", ppacer.Node(Note("only", recorder)))])
    )
    answer = runner.client.trigger_dag_run("params", {"date": "2024-03-11", "n": 3})
    wait_run_finished(db_paths[0], "params")
    ((_, seen),) = recorder.events
    assert seen["params"] == {"date": "2024-03-11", "n": 3}
    assert seen["run_id"] == answer["runId"]


def test_restart_reruns_only_failed_and_upstream_failed_tasks(start_local, db_paths, recorder):
    root = ppacer.Node(Note("ok", recorder))
    flaky = root.next(Note("flaky", recorder, fail_times=1))
    flaky.next(Note("child", recorder))
    root.next(Note("side", recorder))
    runner = start_local(ppacer.Registry([manual_dag("restart", root)]))
    client = runner.client
    client.trigger_dag_run("restart")
    db = db_paths[0]
    (run,) = wait_run_finished(db, "restart")
    assert run["Status"] == "FAILED"
    client.restart_dag_run("restart", run["ExecTs"])
    wait_for(
        lambda: query(db, "SELECT Status FROM dagruns")[0]["Status"] == "SUCCESS",
        what="restarted run SUCCESS",
    )
    rows = [(r["TaskId"], r["Retry"], r["Status"]) for r in tasks_of(db, "restart")]
    assert sorted(rows) == sorted(
        [
            ("ok", 0, "SUCCESS"),
            ("side", 0, "SUCCESS"),
            ("flaky", 0, "FAILED"),
            ("child", 0, "UPSTREAM_FAILED"),
            ("flaky", 1, "SUCCESS"),
            ("child", 1, "SUCCESS"),
        ]
    )
    assert recorder.task_ids().count("ok") == 1 and recorder.task_ids().count("side") == 1
    restarts = query(db, "SELECT * FROM dagrunrestarts")
    assert [(r["DagId"], r["ExecTs"], r["Restart"]) for r in restarts] == [
        ("restart", run["ExecTs"], 1)
    ]


def test_restart_of_a_successful_run_is_refused(start_local, db_paths, recorder):
    runner = start_local(ppacer.Registry([manual_dag("fine", ppacer.Node(Note("a", recorder)))]))
    client = runner.client
    client.trigger_dag_run("fine")
    (run,) = wait_run_finished(db_paths[0], "fine")
    with pytest.raises(ppacer.errors.InvalidInputError, match="only a FAILED run"):
        client.restart_dag_run("fine", run["ExecTs"])
    with pytest.raises(ppacer.errors.NotFoundError, match="unknown DAG"):
        client.restart_dag_run("nope", run["ExecTs"])


class Gate(ppacer.BaseTask):
    """Blocks until released, so a test can stop the scheduler in the middle of a run."""

    def __init__(self, task_id: str, recorder: Recorder, gate: threading.Event) -> None:
        super().__init__(task_id)
        self.recorder = recorder
        self.gate = gate

    def execute(self, ctx: ppacer.TaskContext) -> None:
        self.recorder.add(self.task_id)
        if not self.gate.wait(30):
            raise TimeoutError("gate never opened")


def test_scheduler_restarted_mid_run_finishes_it_without_rerunning_successes(
    start_local, db_paths, recorder
):
    gate = threading.Event()

    def registry() -> ppacer.Registry:
        root = ppacer.Node(Note("first", recorder))
        root.next(Gate("second", recorder, gate)).next(Note("third", recorder))
        return ppacer.Registry([manual_dag("resume", root)])

    runner = start_local(registry(), stop_timeout_s=0.2)
    with Client(runner.url) as client:
        client.trigger_dag_run("resume")
    db = db_paths[0]
    wait_for(lambda: "second" in recorder.task_ids(), what="second task running")
    runner.stop()  # "second" is still running: its attempt stays RUNNING in the DB
    assert query(db, "SELECT Status FROM dagruns")[0]["Status"] == "RUNNING"
    gate.set()
    start_local(registry())
    (run,) = wait_run_finished(db, "resume")
    assert run["Status"] == "SUCCESS"
    keys = recorder.task_ids()
    assert keys.count("first") == 1
    assert keys.count("third") == 1
    status = {(r["TaskId"], r["Retry"]): r["Status"] for r in tasks_of(db, "resume")}
    assert status == {("first", 0): "SUCCESS", ("second", 0): "SUCCESS", ("third", 0): "SUCCESS"}


def _scheduled_dag(dag_id: str, recorder: Recorder, catch_up: bool, start: datetime) -> ppacer.Dag:
    sched = ppacer.FixedSchedule(start, timedelta(seconds=10))
    return (
        ppacer.Dag(dag_id)
        .add_schedule(sched)
        .add_root(ppacer.Node(Note("t", recorder)))
        .add_attributes(catch_up=catch_up)
        .done()
    )


@pytest.mark.parametrize("catch_up", [True, False])
def test_outage_is_caught_up_or_skipped(start_local, db_paths, recorder, catch_up):
    t0 = datetime(2024, 3, 11, 12, 0, 0, tzinfo=UTC)
    clock = ManualClock(t0 + timedelta(seconds=5))
    db = db_paths[0]
    runner = start_local(
        ppacer.Registry([_scheduled_dag("tick", recorder, catch_up, t0)]), clock=clock
    )
    clock.advance(10)  # 12:00:15 -> the 12:00:10 point is due
    wait_run_finished(db, "tick", 1)
    runner.stop()

    # An outage of one minute: points 12:00:20 .. 12:01:10 are missed.
    clock2 = ManualClock(t0 + timedelta(minutes=1, seconds=15))
    start_local(ppacer.Registry([_scheduled_dag("tick", recorder, catch_up, t0)]), clock=clock2)
    if catch_up:
        runs = wait_run_finished(db, "tick", 7)
        assert [r["ExecTs"][11:19] for r in runs] == [
            "12:00:10",
            "12:00:20",
            "12:00:30",
            "12:00:40",
            "12:00:50",
            "12:01:00",
            "12:01:10",
        ]
        events = query(db, "SELECT Event, ScheduleTs FROM schedules ORDER BY ScheduleTs")
        assert [e["Event"] for e in events] == ["REGULAR"] + ["CAUGHT_UP"] * 6
    else:
        # Only the latest missed point runs; the others are one SKIPPED row.
        runs = wait_run_finished(db, "tick", 2)
        assert [r["ExecTs"][11:19] for r in runs] == ["12:00:10", "12:01:10"]
        skipped = query(db, "SELECT * FROM schedules WHERE Event='SKIPPED'")
        assert [(s["ScheduleTs"][11:19], s["NextScheduleTs"][11:19]) for s in skipped] == [
            ("12:00:20", "12:01:10")
        ]
        clock2.advance(10)  # 12:01:25 -> the 12:01:20 point is due
        runs = wait_run_finished(db, "tick", 3)
        assert [r["ExecTs"][11:19] for r in runs] == ["12:00:10", "12:01:10", "12:01:20"]
        events = query(
            db, "SELECT Event FROM schedules WHERE Event != 'SKIPPED' ORDER BY ScheduleTs"
        )
        assert [e["Event"] for e in events] == ["REGULAR", "CAUGHT_UP", "REGULAR"]


def test_full_run_queue_delays_runs_in_order_without_dropping(start_local, db_paths, recorder):
    t0 = datetime(2024, 3, 11, 12, 0, 0, tzinfo=UTC)
    clock = ManualClock(t0 - timedelta(seconds=1))
    config = ppacer.Config(dag_run_queue_len=1)
    dag = _scheduled_dag("busy", recorder, catch_up=True, start=t0)
    start_local(ppacer.Registry([dag]), clock=clock, config=config)
    clock.advance(timedelta(minutes=5))  # 30 points due at once through a queue of one
    runs = wait_run_finished(db_paths[0], "busy", 30)
    stamps = [parse_ts(r["ExecTs"]) for r in runs]
    assert stamps == [t0 + timedelta(seconds=10 * i) for i in range(30)]
    assert all(r["Status"] == "SUCCESS" for r in runs)


def test_many_dags_due_at_once_all_run_and_a_triggered_point_is_not_duplicated(
    start_local, db_paths, recorder
):
    # 300 DAGs due at the same instant are created in batches; one of them was
    # triggered for that exact time already, so its batch falls back to one run
    # at a time: that point keeps its triggered run, every other DAG gets its run.
    t0 = datetime(2024, 3, 11, 12, 0, 0, tzinfo=UTC)
    clock = ManualClock(t0 - timedelta(seconds=1))
    dags = [_scheduled_dag(f"d{i:03d}", recorder, False, t0) for i in range(300)]
    runner = start_local(ppacer.Registry(dags), clock=clock)
    triggered = runner.client.trigger_dag_run("d150", params={"by": "hand"}, exec_ts=t0)
    db = db_paths[0]
    wait_run_finished(db, "d150")
    clock.advance(timedelta(seconds=1))

    def all_finished() -> list[Any]:
        sql = "SELECT * FROM dagruns WHERE Status IN ('SUCCESS', 'FAILED') ORDER BY DagId"
        rows = query(db, sql)
        return rows if len(rows) == 300 else []

    runs = wait_for(all_finished, what="300 finished runs")
    assert {r["DagId"] for r in runs} == {f"d{i:03d}" for i in range(300)}
    assert all(r["Status"] == "SUCCESS" and parse_ts(r["ExecTs"]) == t0 for r in runs)
    (d150,) = [r for r in runs if r["DagId"] == "d150"]
    assert d150["RunId"] == triggered["runId"]
    assert query(db, "SELECT COUNT(*) AS n FROM dagruntasks")[0]["n"] == 300
    # Each point is recorded with the point that follows it, so a restart resumes there.
    points = query(db, "SELECT * FROM schedules WHERE Event = 'REGULAR'")
    assert len(points) == 300
    assert all(parse_ts(p["NextScheduleTs"]) == t0 + timedelta(seconds=10) for p in points)


def test_due_runs_wait_for_room_in_a_small_queue_in_order(start_local, db_paths, recorder):
    t0 = datetime(2024, 3, 11, 12, 0, 0, tzinfo=UTC)
    clock = ManualClock(t0 - timedelta(seconds=1))
    config = ppacer.Config(dag_run_queue_len=3)
    dags = [_scheduled_dag(f"q{i}", recorder, True, t0) for i in range(4)]
    start_local(ppacer.Registry(dags), clock=clock, config=config)
    clock.advance(timedelta(seconds=60))  # 6 points of each of 4 DAGs through a queue of 3
    db = db_paths[0]
    for i in range(4):
        runs = wait_run_finished(db, f"q{i}", 6)
        assert [parse_ts(r["ExecTs"]) for r in runs] == [
            t0 + timedelta(seconds=10 * k) for k in range(6)
        ]
        assert all(r["Status"] == "SUCCESS" for r in runs)
    # Runs of one DAG were created in the order of their points.
    rows = query(db, "SELECT DagId, ExecTs FROM dagruns ORDER BY RunId")
    for i in range(4):
        stamps = [r["ExecTs"] for r in rows if r["DagId"] == f"q{i}"]
        assert stamps == sorted(stamps)
