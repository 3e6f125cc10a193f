"""Faults inside tasks end the attempt, never the executor: a real scheduler and executor."""

from __future__ import annotations

import sys

import pytest

import ppacer
from tests.conftest import query, wait_run_finished
from tests.e2e.test_runs import manual_dag


class Exits(ppacer.BaseTask):
    """Calls ``sys.exit(3)``, as a script's helper might."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        sys.exit(3)


class Interrupted(ppacer.BaseTask):
    """Raises ``KeyboardInterrupt`` in its worker thread."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        raise KeyboardInterrupt


class AsyncExits(ppacer.BaseTask):
    """An ``async def execute`` that raises ``SystemExit`` on the executor's event loop."""

    async def execute(self, ctx: ppacer.TaskContext) -> None:  # type: ignore[override]
        raise SystemExit(3)


class AsyncAnswer(ppacer.BaseTask):
    """An ``async def execute`` that returns a value (it needs a living event loop)."""

    async def execute(self, ctx: ppacer.TaskContext) -> int:  # type: ignore[override]
        return 42


class Answer(ppacer.BaseTask):
    """Returns a value."""

    def execute(self, ctx: ppacer.TaskContext) -> int:
        return 42


@pytest.mark.parametrize(
    ("fault", "after", "error"),
    [
        (Exits("exit"), Answer("answer"), "SystemExit: 3"),
        (Interrupted("exit"), Answer("answer"), "KeyboardInterrupt"),
        (AsyncExits("exit"), AsyncAnswer("answer"), "SystemExit: 3"),
    ],
    ids=["sys.exit-in-a-thread", "KeyboardInterrupt-in-a-thread", "SystemExit-in-a-coroutine"],
)
def test_task_exiting_fails_its_attempt_and_the_executor_runs_the_next_task(
    start_local, db_paths, fault, after, error
):
    dags = ppacer.Registry(
        [manual_dag("exits", ppacer.Node(fault)), manual_dag("after", ppacer.Node(after))]
    )
    # One worker: were it lost to the exit, no later task would ever run.
    runner = start_local(dags, concurrency=1)
    runner.client.trigger_dag_run("exits")
    (failed,) = wait_run_finished(db_paths[0], "exits")
    assert failed["Status"] == "FAILED"
    (row,) = query(db_paths[0], "SELECT Error FROM dagruntaskerrors WHERE DagId='exits'")
    assert row["Error"].startswith(error), row["Error"]  # its own cause, not "executor lost"
    logged = query(db_paths[1], "SELECT Message FROM tasklogs WHERE DagId='exits'")
    assert any(m["Message"].startswith(f"task failed: {error}") for m in logged), logged

    runner.client.trigger_dag_run("after")
    (run,) = wait_run_finished(db_paths[0], "after")
    assert run["Status"] == "SUCCESS"
    (output,) = query(db_paths[0], "SELECT Value FROM dagruntaskoutputs WHERE DagId='after'")
    assert output["Value"] == "42"
