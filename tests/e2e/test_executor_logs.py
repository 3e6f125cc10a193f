"""Where an executor's task logs go: a handler given to it, or the logs DB it opens."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

import pytest

import ppacer
from ppacer.executor.executor import Executor
from tests.conftest import query, wait_run_finished
from tests.e2e.test_runs import manual_dag


class ListHandler(logging.Handler):
    """Keeps the records it is given."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self.guard:
            self.records.append(record)


class Chatty(ppacer.BaseTask):
    """Logs a line."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        ctx.logger.info("hello from %s", ctx.task_id)


def test_task_logs_go_to_the_log_handler_given_to_the_executor(start_local, db_paths):
    dags = ppacer.Registry([manual_dag("chatty", ppacer.Node(Chatty("talk")))])
    runner = start_local(dags, with_executor=False)
    handler = ListHandler()
    executor = Executor(runner.url, dags, log_handler=handler, poll_wait_s=1.0).start()
    try:
        runner.client.trigger_dag_run("chatty")
        (run,) = wait_run_finished(db_paths[0], "chatty")
        assert run["Status"] == "SUCCESS"
    finally:
        assert executor.stop(5)
    with handler.guard:
        lines = [
            (getattr(r, "ppacer_dag_id", None), getattr(r, "ppacer_task_id", None), r.getMessage())
            for r in handler.records
        ]
    assert ("chatty", "talk", "hello from talk") in lines
    # Nothing went to the logs DB: the executor opened none.
    assert not query(db_paths[1], "SELECT 1 FROM tasklogs WHERE DagId='chatty'")


def test_executor_given_both_a_logs_db_and_a_log_handler_is_an_error(db_paths):
    with pytest.raises(ValueError, match="logs_db or log_handler"):
        Executor(
            "http://127.0.0.1:9",
            ppacer.Registry(),
            logs_db=str(db_paths[1]),
            log_handler=ListHandler(),
        )


def test_executor_without_a_logs_db_does_not_load_sqlalchemy():
    code = (
        "import sys, ppacer\n"
        "from ppacer.executor.executor import Executor\n"
        "Executor('http://127.0.0.1:9', ppacer.Registry()).stop(0)\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"


def test_task_logs_go_to_the_logs_db_at_the_path_given(start_local, db_paths, tmp_path):
    dags = ppacer.Registry([manual_dag("chatty", ppacer.Node(Chatty("talk")))])
    runner = start_local(dags, with_executor=False)
    own_logs = tmp_path / "executor-logs.db"
    executor = Executor(runner.url, dags, logs_db=str(own_logs), poll_wait_s=1.0).start()
    try:
        runner.client.trigger_dag_run("chatty")
        (run,) = wait_run_finished(db_paths[0], "chatty")
        assert run["Status"] == "SUCCESS"
    finally:
        assert executor.stop(5)
    rows = query(own_logs, "SELECT TaskId, Message FROM tasklogs WHERE DagId='chatty'")
    assert ("talk", "hello from talk") in [(r["TaskId"], r["Message"]) for r in rows]
