"""Task semantics end to end: retries, timeouts, async tasks, trigger rules, branches,
outputs, run deadlines and illegal reports - a real scheduler, executor and SQLite."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import ppacer
from ppacer import Branch, TaskConfig
from ppacer.errors import ConflictError
from ppacer.executor.client import Client
from ppacer.notify import Message
from ppacer.scheduler.config import Config
from ppacer.timeutils import parse_ts
from tests.conftest import Recorder, query, wait_for, wait_run_finished
from tests.e2e.test_runs import Note, manual_dag, tasks_of


class Fail(ppacer.BaseTask):
    """Always raises."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        raise ValueError(f"{self.task_id} is broken")


class Returns(ppacer.BaseTask):
    """Returns a fixed value (or what ``fn(ctx)`` gives)."""

    def __init__(self, task_id: str, value: Any) -> None:
        super().__init__(task_id)
        self.value = value

    def execute(self, ctx: ppacer.TaskContext) -> Any:
        return self.value(ctx) if callable(self.value) else self.value


class Collected(list[Message]):
    """A notifier keeping what it was sent (thread-safe enough for list.append)."""

    def send(self, message: Message) -> None:
        self.append(message)


def statuses(db: Path, dag_id: str) -> dict[str, str]:
    """Latest status of each task of the DAG's only run."""
    out: dict[str, tuple[int, str]] = {}
    for r in tasks_of(db, dag_id):
        if r["TaskId"] not in out or r["Retry"] >= out[r["TaskId"]][0]:
            out[r["TaskId"]] = (r["Retry"], r["Status"])
    return {t: s for t, (_, s) in out.items()}


def errors(db: Path, dag_id: str) -> dict[tuple[str, int], str]:
    rows = query(db, "SELECT TaskId, Retry, Error FROM dagruntaskerrors WHERE DagId=?", (dag_id,))
    return {(r["TaskId"], r["Retry"]): r["Error"] for r in rows}


# ---------------------------------------------------------------- retries


def test_retries_back_off_exponentially_with_a_row_and_error_per_attempt(start_local, db_paths):
    recorder = Recorder()
    config = TaskConfig(retries=3, retry_delay_s=0.1, retry_backoff=2.0, max_retry_delay_s=0.3)
    root = ppacer.Node(Note("flaky", recorder, fail_times=3), config)
    runner = start_local(ppacer.Registry([manual_dag("backoff", root)]))
    runner.client.trigger_dag_run("backoff")
    (run,) = wait_run_finished(db_paths[0], "backoff")
    assert run["Status"] == "SUCCESS"
    rows = sorted(tasks_of(db_paths[0], "backoff"), key=lambda r: r["Retry"])
    assert [(r["Retry"], r["Status"]) for r in rows] == [
        (0, "FAILED_PENDING_RETRY"),
        (1, "FAILED_PENDING_RETRY"),
        (2, "FAILED_PENDING_RETRY"),
        (3, "SUCCESS"),
    ]
    gaps = [
        (parse_ts(b["InsertTs"]) - parse_ts(a["StatusUpdateTs"])).total_seconds()
        for a, b in itertools.pairwise(rows)
    ]
    # 0.1, 0.2, then 0.4 capped at 0.3.
    for gap, expected in zip(gaps, (0.1, 0.2, 0.3), strict=True):
        assert gap >= expected - 0.005, gaps
    assert gaps[2] < 0.4, gaps
    assert errors(db_paths[0], "backoff") == {
        ("flaky", i): f"RuntimeError: flaky boom #{i + 1}" for i in range(3)
    }


def test_dag_default_config_applies_to_nodes_without_their_own(start_local, db_paths):
    recorder = Recorder()
    root = ppacer.Node(Note("inherits", recorder, fail_times=1))
    root.next(Note("own", recorder), TaskConfig(retries=0))
    dag = ppacer.Dag("defaults", root=root, default_config=TaskConfig(retries=2)).done()
    assert dag.tasks["inherits"].config.retries == 2
    assert dag.tasks["own"].config.retries == 0
    runner = start_local(ppacer.Registry([dag]))
    runner.client.trigger_dag_run("defaults")
    (run,) = wait_run_finished(db_paths[0], "defaults")
    assert run["Status"] == "SUCCESS"
    assert statuses(db_paths[0], "defaults") == {"inherits": "SUCCESS", "own": "SUCCESS"}


# ---------------------------------------------------------------- timeouts


class SleepForever(ppacer.BaseTask):
    """Writes its pid to a file, then sleeps far longer than any test."""

    def __init__(self, task_id: str, pid_file: Path) -> None:
        super().__init__(task_id)
        self.pid_file = pid_file

    def execute(self, ctx: ppacer.TaskContext) -> None:
        ctx.logger.info("sleeping in pid %d", os.getpid())
        self.pid_file.write_text(str(os.getpid()))
        time.sleep(3600)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes; it is reaped by join().
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_timeout_kills_the_child_process_and_retries(start_local, db_paths, tmp_path):
    pid_file = tmp_path / "pid"
    config = TaskConfig(timeout_s=0.5, retries=1)
    root = ppacer.Node(SleepForever("sleeper", pid_file), config)
    runner = start_local(ppacer.Registry([manual_dag("timeout", root)]))
    runner.client.trigger_dag_run("timeout")
    (run,) = wait_run_finished(db_paths[0], "timeout")
    assert run["Status"] == "FAILED"
    rows = sorted(tasks_of(db_paths[0], "timeout"), key=lambda r: r["Retry"])
    assert [(r["Retry"], r["Status"]) for r in rows] == [
        (0, "FAILED_PENDING_RETRY"),
        (1, "FAILED"),
    ]
    for (_, retry), error in errors(db_paths[0], "timeout").items():
        assert error.startswith("TimeoutError"), (retry, error)
        assert "killed" in error
    pid = int(pid_file.read_text())
    assert pid != os.getpid()
    assert not _alive(pid), "the timed-out task's process is gone"
    logs = query(db_paths[1], "SELECT Message FROM tasklogs WHERE TaskId='sleeper'")
    assert any(f"sleeping in pid {pid}" in r["Message"] for r in logs), "child logs reach the DB"


def test_thread_task_past_its_timeout_is_failed_and_its_late_result_dropped(start_local, db_paths):
    release = threading.Event()
    finished = threading.Event()

    @ppacer.task
    def stuck(ctx: ppacer.TaskContext) -> None:
        release.wait(30)
        finished.set()

    root = ppacer.Node(stuck, TaskConfig(timeout_s=0.3, isolation="thread"))
    runner = start_local(ppacer.Registry([manual_dag("stuck", root)]))
    runner.client.trigger_dag_run("stuck")
    (run,) = wait_run_finished(db_paths[0], "stuck")
    release.set()
    assert run["Status"] == "FAILED"
    assert "TimeoutError" in errors(db_paths[0], "stuck")[("stuck", 0)]
    wait_for(finished.is_set, what="the stuck thread to return")
    assert statuses(db_paths[0], "stuck") == {"stuck": "FAILED"}


# ---------------------------------------------------------------- async tasks


class AsyncTask(ppacer.BaseTask):
    """An ``async def execute``: records the thread its coroutine runs on."""

    def __init__(self, task_id: str, recorder: Recorder, sleep_s: float = 0.0) -> None:
        super().__init__(task_id)
        self.recorder = recorder
        self.sleep_s = sleep_s

    async def execute(self, ctx: ppacer.TaskContext) -> dict[str, str]:  # type: ignore[override]
        self.recorder.add(self.task_id, threading.current_thread().name)
        await asyncio.sleep(self.sleep_s)
        return {"loop": threading.current_thread().name}


def test_async_tasks_run_on_the_executors_event_loop(start_local, db_paths):
    recorder = Recorder()
    root = ppacer.Node(AsyncTask("a1", recorder))
    root.next(AsyncTask("a2", recorder))
    runner = start_local(ppacer.Registry([manual_dag("async", root)]))
    runner.client.trigger_dag_run("async")
    (run,) = wait_run_finished(db_paths[0], "async")
    assert run["Status"] == "SUCCESS"
    threads = [v for _, v in recorder.events]
    assert len(threads) == 2 and threads[0] == threads[1]
    assert threads[0].startswith("ppacer-async-"), threads


def test_async_task_past_its_timeout_is_cancelled(start_local, db_paths):
    recorder = Recorder()
    root = ppacer.Node(AsyncTask("slow", recorder, sleep_s=60), TaskConfig(timeout_s=0.3))
    runner = start_local(ppacer.Registry([manual_dag("async_timeout", root)]))
    runner.client.trigger_dag_run("async_timeout")
    (run,) = wait_run_finished(db_paths[0], "async_timeout")
    assert run["Status"] == "FAILED"
    assert "cancelled" in errors(db_paths[0], "async_timeout")[("slow", 0)]


# ---------------------------------------------------------------- trigger rules and branches


def test_each_trigger_rule(start_local, db_paths):
    r = Recorder()
    start = ppacer.Node(Note("start", r))
    bad = start.next(Fail("bad"))
    good = start.next(Note("good", r))
    after_bad = bad.next(Note("after_bad", r))
    bad.next(Note("on_fail", r), trigger_rule="one_failed")
    good.next(Note("on_fail_good", r), trigger_rule="one_failed")
    any_ok = ppacer.Node(Note("any_ok", r), trigger_rule="one_success")
    cleanup = ppacer.Node(Note("cleanup", r), trigger_rule=ppacer.TriggerRule.ALL_DONE)
    nf = ppacer.Node(Note("nf", r), trigger_rule="none_failed")
    for parent in (bad, good):
        parent.next(any_ok)
        parent.next(cleanup)
    good.next(nf)
    after_bad.next(nf)
    runner = start_local(ppacer.Registry([manual_dag("rules", start)]))
    runner.client.trigger_dag_run("rules")
    (run,) = wait_run_finished(db_paths[0], "rules")
    assert statuses(db_paths[0], "rules") == {
        "start": "SUCCESS",
        "bad": "FAILED",
        "good": "SUCCESS",
        "after_bad": "UPSTREAM_FAILED",
        "on_fail": "SUCCESS",
        "on_fail_good": "SKIPPED",
        "any_ok": "SUCCESS",
        "cleanup": "SUCCESS",
        "nf": "UPSTREAM_FAILED",
    }
    assert run["Status"] == "FAILED"


def test_a_failure_handled_by_a_one_failed_task_leaves_the_run_successful(start_local, db_paths):
    r = Recorder()
    root = ppacer.Node(Fail("extract"))
    root.next(Note("alert_team", r), trigger_rule="one_failed")
    runner = start_local(ppacer.Registry([manual_dag("handled", root)]))
    runner.client.trigger_dag_run("handled")
    (run,) = wait_run_finished(db_paths[0], "handled")
    assert statuses(db_paths[0], "handled") == {"extract": "FAILED", "alert_team": "SUCCESS"}
    assert run["Status"] == "SUCCESS"


def test_branch_skips_the_children_not_chosen_and_joins_still_run(start_local, db_paths):
    r = Recorder()
    choose = ppacer.Node(Returns("choose", Branch("left", value="went left")))
    left = choose.next(Note("left", r))
    right = choose.next(Note("right", r))
    right_child = right.next(Note("right_child", r))
    join = ppacer.Node(Note("join", r), trigger_rule="none_failed")
    left.next(join)
    right_child.next(join)
    runner = start_local(ppacer.Registry([manual_dag("branch", choose)]))
    runner.client.trigger_dag_run("branch")
    (run,) = wait_run_finished(db_paths[0], "branch")
    assert run["Status"] == "SUCCESS"
    assert statuses(db_paths[0], "branch") == {
        "choose": "SUCCESS",
        "left": "SUCCESS",
        "right": "SKIPPED",
        "right_child": "SKIPPED",
        "join": "SUCCESS",
    }
    assert sorted(r.task_ids()) == ["join", "left"]


def test_short_circuit_skips_everything_downstream(start_local, db_paths):
    r = Recorder()
    gate = ppacer.Node(Returns("gate", Branch()))
    gate.next(Note("a", r)).next(Note("b", r))
    runner = start_local(ppacer.Registry([manual_dag("short", gate)]))
    runner.client.trigger_dag_run("short")
    (run,) = wait_run_finished(db_paths[0], "short")
    assert run["Status"] == "SUCCESS"
    assert statuses(db_paths[0], "short") == {"gate": "SUCCESS", "a": "SKIPPED", "b": "SKIPPED"}
    assert r.task_ids() == []


def test_branch_to_a_task_that_is_not_a_child_fails_the_task(start_local, db_paths):
    r = Recorder()
    root = ppacer.Node(Returns("choose", Branch("nope")))
    root.next(Note("child", r))
    runner = start_local(ppacer.Registry([manual_dag("bad_branch", root)]))
    runner.client.trigger_dag_run("bad_branch")
    (run,) = wait_run_finished(db_paths[0], "bad_branch")
    assert run["Status"] == "FAILED"
    error = errors(db_paths[0], "bad_branch")[("choose", 0)]
    assert "BranchError" in error and "'nope'" in error


# ---------------------------------------------------------------- data between tasks


def test_return_values_flow_to_children(start_local, db_paths):
    r = Recorder()
    produce = ppacer.Node(Returns("produce", {"n": 41, "tags": ["a"]}))
    other = ppacer.Node(Returns("other", "x"))
    consume = ppacer.Node(
        Returns("consume", lambda ctx: ctx.input("produce")["n"] + 1 + len(ctx.input("other")))
    )
    produce.next(consume)
    root = ppacer.Node(Note("root", r))
    root.next(produce)
    root.next(other).next(consume)
    consume.next(Returns("last", lambda ctx: {"got": ctx.input("consume"), **ctx.upstream}))
    runner = start_local(ppacer.Registry([manual_dag("data", root)]))
    runner.client.trigger_dag_run("data")
    (run,) = wait_run_finished(db_paths[0], "data")
    assert run["Status"] == "SUCCESS"
    values = {
        row["TaskId"]: row["Value"]
        for row in query(db_paths[0], "SELECT TaskId, Value FROM dagruntaskoutputs")
    }
    assert values == {
        "produce": '{"n": 41, "tags": ["a"]}',
        "other": '"x"',
        "consume": "43",
        "last": '{"got": 43, "consume": 43}',
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({1, 2}, "not JSON-serialisable"),
        ("x" * (65 * 1024), "the limit is 65536"),
        ({"ratio": float("nan")}, "not JSON-serialisable"),  # JSON has no NaN
        ([float("inf")], "not JSON-serialisable"),
    ],
)
def test_too_large_or_non_json_value_fails_the_task(start_local, db_paths, value, message):
    root = ppacer.Node(Returns("bad_value", value))
    runner = start_local(ppacer.Registry([manual_dag("bad_value", root)]))
    runner.client.trigger_dag_run("bad_value")
    (run,) = wait_run_finished(db_paths[0], "bad_value")
    assert run["Status"] == "FAILED"
    error = errors(db_paths[0], "bad_value")[("bad_value", 0)]
    assert error.startswith("OutputError") and message in error


def test_input_of_a_task_that_is_not_a_parent_is_a_clear_error(start_local, db_paths):
    root = ppacer.Node(Returns("first", 1))
    root.next(Returns("second", lambda ctx: ctx.input("missing")))
    runner = start_local(ppacer.Registry([manual_dag("no_parent", root)]))
    runner.client.trigger_dag_run("no_parent")
    wait_run_finished(db_paths[0], "no_parent")
    error = errors(db_paths[0], "no_parent")[("second", 0)]
    assert "KeyError" in error and "'missing'" in error and "'second'" in error


# ---------------------------------------------------------------- priorities, deadlines


def test_higher_priority_tasks_are_handed_out_first(start_local, db_paths):
    r = Recorder()
    release = threading.Event()

    @ppacer.task
    def hold(ctx: ppacer.TaskContext) -> None:
        release.wait(10)

    root = ppacer.Node(Note("root", r))
    for i, prio in enumerate([1, 5, 3, 9, 0]):
        root.next(Note(f"p{prio}_{i}", r), TaskConfig(priority=prio))
    dag = manual_dag("prio", root)
    runner = start_local(ppacer.Registry([dag]), concurrency=1)
    runner.client.trigger_dag_run("prio")
    (run,) = wait_run_finished(db_paths[0], "prio")
    assert run["Status"] == "SUCCESS"
    assert r.task_ids() == ["root", "p9_3", "p5_1", "p3_2", "p1_0", "p0_4"]


def test_run_past_its_deadline_is_failed_and_notified(start_local, db_paths):
    release = threading.Event()
    r = Recorder()

    @ppacer.task
    def slow(ctx: ppacer.TaskContext) -> None:
        release.wait(30)

    root = ppacer.Node(slow)
    root.next(Note("after", r))
    dag = ppacer.Dag("deadline", root=root, run_timeout_s=0.4).done()
    notes = Collected()
    runner = start_local(ppacer.Registry([dag]), notifier=notes)
    runner.client.trigger_dag_run("deadline")
    (run,) = wait_run_finished(db_paths[0], "deadline")
    release.set()
    assert run["Status"] == "FAILED"
    assert statuses(db_paths[0], "deadline") == {"slow": "FAILED", "after": "UPSTREAM_FAILED"}
    assert "run_timeout_s" in errors(db_paths[0], "deadline")[("slow", 0)]
    wait_for(lambda: any(m.kind == "dag_run_timeout" for m in notes), what="timeout notice")


def test_run_past_its_deadline_has_its_process_task_killed(start_local, db_paths, tmp_path):
    pid_file = tmp_path / "pid"
    root = ppacer.Node(SleepForever("sleeper", pid_file), TaskConfig(isolation="process"))
    dag = ppacer.Dag("deadline_kill", root=root, run_timeout_s=1.0).done()
    # The default lease (30 s): the executor heartbeats every RUN_DEADLINE_HEARTBEAT_S
    # (2 s) rather than every 10 s while a task of a DAG with a run deadline runs.
    runner = start_local(ppacer.Registry([dag]))
    runner.client.trigger_dag_run("deadline_kill")
    wait_for(pid_file.exists, what="the task's process to start")
    pid = int(pid_file.read_text())
    (run,) = wait_run_finished(db_paths[0], "deadline_kill")
    assert run["Status"] == "FAILED"
    assert "run_timeout_s" in errors(db_paths[0], "deadline_kill")[("sleeper", 0)]
    wait_for(lambda: not _alive(pid), what="the task's process to be killed")


# ---------------------------------------------------------------- the status table


def test_illegal_and_out_of_order_reports_get_409_with_the_current_state(start_local, db_paths):
    r = Recorder()
    root = ppacer.Node(Note("a", r))
    root.next(Note("b", r))
    runner = start_local(ppacer.Registry([manual_dag("reports", root)]), with_executor=False)
    client = runner.client
    client.trigger_dag_run("reports")
    item = wait_for(lambda: client.get_task(wait_s=1), what="task a ready")
    client.upsert_task_status(item, ppacer.TaskStatus.RUNNING)
    client.upsert_task_status(item, ppacer.TaskStatus.RUNNING)  # a duplicate: no-op
    client.upsert_task_status(item, ppacer.TaskStatus.SUCCESS)
    client.upsert_task_status(item, ppacer.TaskStatus.SUCCESS)  # a duplicate: no-op
    with pytest.raises(ConflictError, match="SUCCESS; it cannot become RUNNING"):
        client.upsert_task_status(item, ppacer.TaskStatus.RUNNING)
    with pytest.raises(ConflictError, match="SUCCESS; it cannot become FAILED"):
        client.upsert_task_status(item, ppacer.TaskStatus.FAILED, "late")
    b = wait_for(lambda: client.get_task(wait_s=1), what="task b ready")
    assert b.task_id == "b" and b.upstream == {"a": None}
    from dataclasses import replace

    with pytest.raises(ConflictError, match="retry 3 is not the current attempt"):
        client.upsert_task_status(replace(b, retry=3), ppacer.TaskStatus.RUNNING)
    with pytest.raises(ConflictError, match="lease token is stale"):
        client.upsert_task_status(replace(b, lease_token="forged"), ppacer.TaskStatus.RUNNING)
    # Handing b out made it RUNNING (its row is written within milliseconds).
    assert b.status == "RUNNING"
    wait_for(lambda: statuses(db_paths[0], "reports") == {"a": "SUCCESS", "b": "RUNNING"})


# ---------------------------------------------------------------- leases


def test_lease_of_a_stray_client_expires_and_the_task_is_retried(start_local, db_paths):
    r = Recorder()
    root = ppacer.Node(Note("work", r), TaskConfig(retries=1))
    registry = ppacer.Registry([manual_dag("stray", root)])
    runner = start_local(registry, config=Config(lease_timeout_s=0.3), with_executor=False)
    with Client(runner.url) as stray:
        stray.trigger_dag_run("stray")
        item = wait_for(lambda: stray.get_task(wait_s=1, executor="stray"), what="a task")
        stray.upsert_task_status(item, ppacer.TaskStatus.RUNNING)
        # No heartbeats: the lease expires, the attempt fails as "executor lost".
        wait_for(
            lambda: ("work", 0) in errors(db_paths[0], "stray"), what="the attempt to be failed"
        )
        assert "executor lost" in errors(db_paths[0], "stray")[("work", 0)]
        with pytest.raises(ConflictError):
            stray.upsert_task_status(item, ppacer.TaskStatus.SUCCESS)  # too late
    executor = ppacer.Executor(runner.url, registry, logs_db=str(db_paths[1]), name="good")
    executor.start()
    try:
        (run,) = wait_run_finished(db_paths[0], "stray")
    finally:
        executor.stop()
    assert run["Status"] == "SUCCESS"
    rows = sorted(tasks_of(db_paths[0], "stray"), key=lambda row: row["Retry"])
    assert [(row["Retry"], row["Status"]) for row in rows] == [
        (0, "FAILED_PENDING_RETRY"),
        (1, "SUCCESS"),
    ]


def test_a_healthy_executor_keeps_a_lease_shorter_than_its_task(start_local, db_paths):
    @ppacer.task
    def slow(ctx: ppacer.TaskContext) -> str:
        time.sleep(5.0)  # 2.5 leases long: only heartbeats keep the attempt alive
        return "done"

    root = ppacer.Node(slow, TaskConfig(isolation="thread"))
    runner = start_local(
        ppacer.Registry([manual_dag("short_lease", root)]), config=Config(lease_timeout_s=2.0)
    )
    runner.client.trigger_dag_run("short_lease")
    (run,) = wait_run_finished(db_paths[0], "short_lease")
    assert errors(db_paths[0], "short_lease") == {}
    assert run["Status"] == "SUCCESS"
    rows = tasks_of(db_paths[0], "short_lease")
    assert [(r["Retry"], r["Status"]) for r in rows] == [(0, "SUCCESS")]


def test_heartbeats_do_not_keep_a_task_past_its_timeout_alive(start_local, db_paths):
    r = Recorder()
    root = ppacer.Node(Note("stuck", r), TaskConfig(timeout_s=0.4))
    runner = start_local(
        ppacer.Registry([manual_dag("liveness", root)]),
        config=Config(lease_timeout_s=0.3, timeout_grace_s=0.2),
        with_executor=False,
    )
    client = runner.client
    client.trigger_dag_run("liveness")
    item = wait_for(lambda: client.get_task(wait_s=1, executor="x"), what="a task")
    assert item.lease_token is not None
    client.upsert_task_status(item, ppacer.TaskStatus.RUNNING)
    # The executor process is alive and heartbeats, but the task makes no progress.
    lost = wait_for(
        lambda: client.heartbeat("x", [item.lease_token or ""], running=1),
        timeout_s=5,
        what="the lease to be refused",
    )
    assert lost == [item.lease_token]
    (run,) = wait_run_finished(db_paths[0], "liveness")
    assert run["Status"] == "FAILED"
    assert "TimeoutError" in errors(db_paths[0], "liveness")[("stuck", 0)]
    executors = runner.scheduler.task_scheduler.executors
    assert executors["x"].running == 1 and not executors["x"].leases


def test_executor_stopping_with_a_deadline_kills_its_child_processes(
    start_local, db_paths, tmp_path
):
    pid_file = tmp_path / "pid"
    root = ppacer.Node(SleepForever("sleeper", pid_file), TaskConfig(isolation="process"))
    registry = ppacer.Registry([manual_dag("shutdown", root)])
    runner = start_local(registry, with_executor=False)
    executor = ppacer.Executor(
        runner.url, registry, logs_db=str(db_paths[1]), name="leaving", poll_wait_s=0.5
    )
    executor.start()
    runner.client.trigger_dag_run("shutdown")
    wait_for(pid_file.exists, what="the task's process to start")
    assert executor.stop(timeout_s=0.2) is False
    pid = int(pid_file.read_text())
    assert not _alive(pid)
    (run,) = wait_run_finished(db_paths[0], "shutdown")
    assert run["Status"] == "FAILED"
    error = errors(db_paths[0], "shutdown")[("sleeper", 0)]
    assert "executor stopped" in error and "killed" in error
