"""Executors in other processes, and executors that outlive the scheduler's absence."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import ppacer
from ppacer.executor.executor import Executor
from tests.conftest import Recorder, query, wait_for, wait_run_finished
from tests.e2e.dags_for_processes import registry, serve_until_sigterm
from tests.e2e.test_runs import Note, manual_dag

ROOT = Path(__file__).resolve().parents[2]


def test_executors_in_separate_processes_share_the_work(start_local, db_paths):
    runner = start_local(registry(), with_executor=False)
    logs_db = str(db_paths[1])
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.dags_for_processes", runner.url, logs_db, f"x{i}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "executor started"
        runner.client.trigger_dag_run("spread")
        (run,) = wait_run_finished(db_paths[0], "spread")
        assert run["Status"] == "SUCCESS"
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        errs = [proc.communicate(timeout=30)[1] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), errs
    pids = {row["Attributes"] for row in query(db_paths[1], "SELECT Attributes FROM tasklogs")}
    assert len(pids) == 2, "both executor processes ran tasks"
    assert str(os.getpid()) not in "".join(pids)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_executor_started_before_the_scheduler_waits_and_logs_once(
    start_local, db_paths, recorder: Recorder, caplog: pytest.LogCaptureFixture
):
    port = free_port()
    dags = ppacer.Registry([manual_dag("late", ppacer.Node(Note("a", recorder)))])
    caplog.set_level(logging.INFO, logger="ppacer.executor")
    executor = Executor(f"http://127.0.0.1:{port}", dags, poll_wait_s=1.0).start()
    try:
        wait_for(
            lambda: any("unreachable" in r.getMessage() for r in caplog.records),
            what="unreachable warning",
        )
        runner = start_local(dags, port=port, with_executor=False)
        runner.client.trigger_dag_run("late")
        (run,) = wait_run_finished(db_paths[0], "late")
        assert run["Status"] == "SUCCESS"
    finally:
        executor.stop(5)
    messages = [r.getMessage() for r in caplog.records if r.name == "ppacer.executor"]
    assert sum("unreachable" in m for m in messages) == 1
    assert any("reachable again" in m for m in messages)


def test_a_task_the_executor_lacks_waits_for_one_that_has_it(start_local, db_paths, recorder):
    """Not handed to an executor without it (no retry burned); the reason shown; it runs later."""
    scheduler_dags = ppacer.Registry(
        [
            manual_dag("known", ppacer.Node(Note("a", recorder))),
            manual_dag("unknown_here", ppacer.Node(Note("b", recorder))),
        ]
    )
    runner = start_local(scheduler_dags, with_executor=False)
    executor_dags = ppacer.Registry([manual_dag("known", ppacer.Node(Note("a", recorder)))])
    executor = Executor(runner.url, executor_dags, poll_wait_s=1.0).start()
    complete = None
    try:
        waiting = runner.client.trigger_dag_run("unknown_here")
        runner.client.trigger_dag_run("known")
        (good,) = wait_run_finished(db_paths[0], "known")
        assert good["Status"] == "SUCCESS"

        def reason() -> str | None:
            (task,) = runner.client.get_dag_run(waiting["runId"])["tasks"]
            return task["waitingReason"]

        assert "unknown_here" not in recorder.task_ids()
        assert "no connected executor" in wait_for(reason, 10, "the waiting reason")
        assert query(db_paths[0], "SELECT * FROM dagruntaskerrors") == []
        complete = Executor(runner.url, scheduler_dags, poll_wait_s=1.0).start()
        (done,) = wait_run_finished(db_paths[0], "unknown_here")
        assert done["Status"] == "SUCCESS"
        assert (
            query(db_paths[0], "SELECT Retry FROM dagruntasks WHERE DagId = 'unknown_here'")[0][
                "Retry"
            ]
            == 0
        )
    finally:
        executor.stop(5)
        if complete is not None:
            complete.stop(5)


def _start_executor(url: str, logs_db: str, name: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.dags_for_processes", url, logs_db, name],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "executor started"
    return proc


def _stop_executor(proc: subprocess.Popen[str]) -> None:
    """SIGTERM an executor process and wait for it; on a hang, fail with what it printed."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=30)
        message = f"executor pid {proc.pid} ignored SIGTERM for 30 s:\n{err[-4000:]}"
        raise AssertionError(message) from None


def test_executor_killed_mid_task_is_detected_and_another_executor_retries_it(
    start_local, db_paths
):
    from ppacer.scheduler.config import Config

    # Heartbeats every second; a loaded machine may delay one, not three in a row (a lease
    # lost before the kill would let the doomed executor run the retry itself).
    runner = start_local(registry(), config=Config(lease_timeout_s=3.0), with_executor=False)
    logs_db = str(db_paths[1])
    doomed = _start_executor(runner.url, logs_db, "doomed")
    try:
        runner.client.trigger_dag_run("lost")
        wait_for(
            lambda: query(db_paths[1], "SELECT 1 FROM tasklogs WHERE Message LIKE 'attempt 0%'"),
            what="attempt 0 to start in the doomed executor",
        )
        # Alive, it renews the lease (a heartbeat says it runs the attempt): only the kill
        # below can lose it. (Without the kill, attempt 0 hangs and the run never ends.)
        executors = runner.scheduler.task_scheduler.executors
        wait_for(
            lambda: "doomed" in executors and executors["doomed"].running == 1,
            what="a heartbeat from the doomed executor",
        )
    finally:
        doomed.kill()  # SIGKILL: no goodbye, no report
        _, doomed_err = doomed.communicate(timeout=30)
    assert doomed.returncode == -signal.SIGKILL
    # Its lease was lost to the kill only: it never ran the retry itself.
    assert "lease lost" not in doomed_err, doomed_err
    rescuer = _start_executor(runner.url, logs_db, "rescuer")
    try:
        (run,) = wait_run_finished(db_paths[0], "lost")
    finally:
        _stop_executor(rescuer)
    assert run["Status"] == "SUCCESS"
    rows = query(db_paths[0], "SELECT Retry, Status FROM dagruntasks WHERE DagId='lost'")
    assert sorted((r["Retry"], r["Status"]) for r in rows) == [
        (0, "FAILED_PENDING_RETRY"),
        (1, "SUCCESS"),
    ]
    (error,) = query(db_paths[0], "SELECT Error FROM dagruntaskerrors WHERE DagId='lost'")
    assert "executor lost" in error["Error"] and "doomed" in error["Error"]
    (value,) = query(db_paths[0], "SELECT Value FROM dagruntaskoutputs WHERE DagId='lost'")
    assert str(rescuer.pid) in value["Value"]


@ppacer.task
def stuck_forever(ctx: ppacer.TaskContext) -> None:
    """A thread task (no timeout of its own) that never returns."""
    ctx.logger.info("stuck in pid %d", os.getpid())
    threading.Event().wait()


def stuck_registry() -> ppacer.Registry:
    return ppacer.Registry([manual_dag("stuck_thread", ppacer.Node(stuck_forever))])


def run_stuck_executor() -> None:
    """An executor process for :func:`stuck_registry`: SIGTERM stops it with a 0.5 s deadline."""
    url, logs_db = sys.argv[1:3]
    executor = Executor(url, stuck_registry(), logs_db=logs_db, name="stuck", poll_wait_s=0.5)
    serve_until_sigterm(executor, stop_timeout_s=0.5)


def test_executor_process_with_a_stuck_thread_task_exits_after_its_stop_deadline(
    start_local, db_paths
):
    config = ppacer.Config(lease_timeout_s=1.0)
    runner = start_local(stuck_registry(), with_executor=False, config=config)
    code = "from tests.e2e.test_executors import run_stuck_executor; run_stuck_executor()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, runner.url, str(db_paths[1])],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "executor started"
        runner.client.trigger_dag_run("stuck_thread")
        wait_for(
            lambda: query(db_paths[1], "SELECT 1 FROM tasklogs WHERE Message LIKE 'stuck in pid%'"),
            what="the stuck task to start",
        )
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)  # a process kept alive by the task never ends
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "left RUNNING for the scheduler" in err
    # The attempt was left to the scheduler, which fails it when its lease runs out.
    (run,) = wait_run_finished(db_paths[0], "stuck_thread")
    assert run["Status"] == "FAILED"
    (error,) = query(db_paths[0], "SELECT Error FROM dagruntaskerrors WHERE DagId='stuck_thread'")
    assert "executor lost" in error["Error"]
