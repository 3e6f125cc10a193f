"""An executor that opens no database: its task logs travel to the scheduler over the API.

A real scheduler on a free loopback port, an executor shipping to it: lines
are readable through the scheduler while the task runs and all of them by the
time the attempt is finished; a scheduler that goes away while a task logs
10,000 lines loses none and stores none twice; the caps say what they cut.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

import ppacer
from ppacer.executor.executor import Executor
from ppacer.executor.logship import LogShipping
from tests.conftest import query, wait_for, wait_run_finished
from tests.e2e.test_executors import free_port
from tests.e2e.test_runs import manual_dag


class Gated(ppacer.BaseTask):
    """Logs ``before`` lines, waits for ``gate``, then logs ``after`` lines (first attempt only)."""

    def __init__(self, task_id: str, before: int, after: int) -> None:
        super().__init__(task_id)
        self.before, self.after = before, after
        self.waiting = threading.Event()
        self.gate = threading.Event()
        self.done_logging = threading.Event()
        self.runs = 0

    def execute(self, ctx: ppacer.TaskContext) -> None:
        self.runs += 1
        if self.runs > 1:  # run again after a scheduler restart: nothing more to say
            return
        for n in range(self.before):
            ctx.logger.info("before %d", n, extra={"n": n})
        self.waiting.set()
        assert self.gate.wait(60)
        for n in range(self.after):
            ctx.logger.info("after %d", n)
        self.done_logging.set()


class Quiet(ppacer.BaseTask):
    """Logs nothing."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        pass


class Long(ppacer.BaseTask):
    """One long line, then more lines than the cap."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        ctx.logger.info("y" * 500)
        for n in range(20):
            ctx.logger.warning("line %d", n)


def messages(runner, run_id: int, task_id: str) -> list[str]:
    out: list[str] = []
    while True:
        page = runner.client.get_task_logs(run_id, task_id, offset=len(out), limit=5000)
        if not page["records"]:
            return out
        out += [r["message"] for r in page["records"]]


def test_lines_are_readable_while_the_task_runs_and_all_of_them_when_it_ends(start_local):
    task = Gated("talk", before=3, after=200)
    dags = ppacer.Registry([manual_dag("ship", ppacer.Node(task))])
    runner = start_local(dags, with_executor=False)
    executor = Executor(runner.new_client(), dags, poll_wait_s=1.0).start()
    try:
        run_id = runner.client.trigger_dag_run("ship")["runId"]
        assert task.waiting.wait(30)
        # Live: the first lines are there while the task still runs (it waits for the gate).
        wait_for(lambda: len(messages(runner, run_id, "talk")) == 3, what="live lines")
        task.gate.set()
        wait_for(lambda: runner.client.get_dag_run(run_id)["status"] == "SUCCESS", what="success")
        # Finished means every line is stored: no wait after the status.
        expected = [f"before {n}" for n in range(3)] + [f"after {n}" for n in range(200)]
        assert messages(runner, run_id, "talk") == expected
        logs = runner.client.get_task_logs(run_id, "talk")
        assert logs["records"][2]["attributes"] == {"n": 2}
    finally:
        assert executor.stop(10)


def test_a_task_that_logs_nothing_sends_no_log_request(start_local, db_paths):
    dags = ppacer.Registry([manual_dag("quiet", ppacer.Node(Quiet("q")))])
    runner = start_local(dags, with_executor=False)
    executor = Executor(runner.new_client(), dags, poll_wait_s=1.0).start()
    try:
        runner.client.trigger_dag_run("quiet")
        (run,) = wait_run_finished(db_paths[0], "quiet")
        assert run["Status"] == "SUCCESS"
        assert executor.shipper is not None
        assert (executor.shipper.stored, executor.shipper.duplicates) == (0, 0)
    finally:
        executor.stop(10)


def test_caps_cut_long_lines_and_count_the_lines_not_shipped(start_local):
    dags = ppacer.Registry([manual_dag("long", ppacer.Node(Long("long")))])
    runner = start_local(dags, with_executor=False)
    shipping = LogShipping(max_line_chars=100, max_lines=5)
    executor = Executor(runner.new_client(), dags, log_shipping=shipping, poll_wait_s=1.0)
    executor.start()
    try:
        run_id = runner.client.trigger_dag_run("long")["runId"]
        wait_for(lambda: runner.client.get_dag_run(run_id)["status"] == "SUCCESS", what="run")
        lines = messages(runner, run_id, "long")
    finally:
        executor.stop(10)
    assert lines[0] == "y" * 100 + " [cut: 400 more characters]"
    assert lines[1:5] == [f"line {n}" for n in range(4)]
    assert len(lines) == 6
    assert lines[5].startswith("16 more lines of this attempt were not shipped")


def test_a_scheduler_away_while_a_task_logs_10000_lines_loses_none_and_stores_none_twice(
    db_paths, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="ppacer.executor")
    task = Gated("talk", before=100, after=10_000)
    dags = ppacer.Registry([manual_dag("outage", ppacer.Node(task))])
    db, logs_db = (str(p) for p in db_paths)
    port = free_port()
    first = ppacer.LocalRunner(dags, db, logs_db, port=port, with_executor=False).start()
    spool = tmp_path / "spool"
    shipping = LogShipping(buffer_records=1000, spool_dir=str(spool))
    executor = Executor(first.url, dags, log_shipping=shipping, poll_wait_s=1.0).start()
    second = None
    try:
        run_id = first.client.trigger_dag_run("outage")["runId"]
        assert task.waiting.wait(30)
        wait_for(lambda: len(messages(first, run_id, "talk")) == 100, what="first lines")
        first.stop()
        task.gate.set()
        assert task.done_logging.wait(60)
        # 10,000 lines for a scheduler that is away: a batch in flight (at most 2,000),
        # 1,000 in memory, the rest on disk.
        assert executor.shipper is not None
        assert executor.shipper.spooled >= 7000
        assert list(spool.glob("spool-*.jsonl"))
        second = ppacer.LocalRunner(dags, db, logs_db, port=port, with_executor=False).start()
        wait_for(
            lambda: second.client.get_dag_run(run_id)["status"] == "SUCCESS",
            timeout_s=60,
            what="the run to finish after the restart",
        )
        expected = [f"before {n}" for n in range(100)] + [f"after {n}" for n in range(10_000)]
        # (The restarted scheduler may have queued the attempt again, and its second run,
        # which logs nothing, may end the run before the first run's lines are in.)
        wait_for(lambda: messages(second, run_id, "talk") == expected, what="every line")
    finally:
        executor.stop(10)
        if second is not None:
            second.stop()
    rows = query(Path(logs_db), "SELECT COUNT(*) AS n, COUNT(DISTINCT Seq) AS seqs FROM tasklogs")
    assert (rows[0]["n"], rows[0]["seqs"]) == (10_100, 10_100)
    assert not list(spool.glob("spool-*.jsonl"))
    shipped = [r.getMessage() for r in caplog.records if "ship" in r.getMessage()]
    assert sum("cannot ship task logs" in m for m in shipped) == 1, shipped
    registered = [r for r in caplog.records if "registered with the scheduler" in r.getMessage()]
    assert len(registered) == 2, "registered on start and again after the restart"
