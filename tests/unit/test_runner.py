"""Running one attempt: every way a task ends becomes one Outcome, and the runner lives on."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import ppacer
from ppacer import Branch, TaskConfig
from ppacer.api.models import TaskToExec
from ppacer.dag.task import task_logger
from ppacer.executor.attempt import Attempt
from ppacer.executor.outcome import Outcome
from ppacer.executor.runner import Runner
from ppacer.timeutils import monotonic

EXEC_TS = "2024-03-11T22:50:20.000000UTC+00:00"


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def runner() -> Iterator[Runner]:
    r = Runner("test")
    yield r
    r.close()


@pytest.fixture
def records() -> Records:
    return Records()


def make_attempt(task_id: str, config: TaskConfig) -> Attempt:
    task = TaskToExec("d", EXEC_TS, task_id, 0)
    return Attempt(task, config, monotonic() + config.timeout_s, heartbeat_s=1.0)


def logger_to(records: Records, task_id: str) -> logging.LoggerAdapter[logging.Logger]:
    base = logging.Logger("ppacer.task")
    base.addHandler(records)
    return task_logger(base, "d", EXEC_TS, task_id, 0)


def run(
    runner: Runner,
    records: Records,
    task: Any,
    config: TaskConfig | None = None,
    *,
    stop_reason: str | None = None,
) -> Outcome:
    attempt = make_attempt(task.task_id, config or TaskConfig(isolation="thread"))
    if stop_reason is not None:
        attempt.stop(stop_reason)
    return runner.run(attempt, task, logger_to(records, task.task_id))


class Raises(ppacer.BaseTask):
    def __init__(self, task_id: str, exc: BaseException) -> None:
        super().__init__(task_id)
        self.exc = exc

    def execute(self, ctx: ppacer.TaskContext) -> None:
        raise self.exc


class AsyncRaises(Raises):
    async def execute(self, ctx: ppacer.TaskContext) -> None:  # type: ignore[override]
        raise self.exc


class Returns(ppacer.BaseTask):
    def __init__(self, task_id: str, value: Any) -> None:
        super().__init__(task_id)
        self.value = value

    def execute(self, ctx: ppacer.TaskContext) -> Any:
        return self.value


class AsyncReturns(Returns):
    async def execute(self, ctx: ppacer.TaskContext) -> Any:  # type: ignore[override]
        return self.value


class AsyncSleeps(ppacer.BaseTask):
    async def execute(self, ctx: ppacer.TaskContext) -> None:  # type: ignore[override]
        await asyncio.sleep(60)


class Exits(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> None:
        sys.exit(3)


@pytest.mark.parametrize(
    ("task", "error"),
    [
        (Exits("t"), "SystemExit: 3"),
        (Raises("t", KeyboardInterrupt()), "KeyboardInterrupt: "),
        (Raises("t", ValueError("bad")), "ValueError: bad"),
        (AsyncRaises("t", SystemExit(3)), "SystemExit: 3"),
        (AsyncRaises("t", KeyboardInterrupt()), "KeyboardInterrupt: "),
        (AsyncRaises("t", ValueError("bad")), "ValueError: bad"),
    ],
    ids=repr,
)
def test_whatever_a_task_raises_is_its_failure_logged_with_the_traceback(
    runner, records, task, error
):
    outcome = run(runner, records, task)
    assert not outcome.is_success
    assert outcome.error == error
    assert outcome.logged
    (record,) = records.records
    assert record.getMessage() == f"task failed: {error}"
    assert record.exc_info is not None and record.ppacer_task_id == "t"


def test_after_a_task_exits_the_same_thread_and_event_loop_run_the_next(runner, records):
    caller = threading.current_thread()
    assert run(runner, records, Exits("t")).error == "SystemExit: 3"
    assert run(runner, records, AsyncRaises("t", SystemExit(4))).error == "SystemExit: 4"
    assert threading.current_thread() is caller and caller.is_alive()
    assert run(runner, records, Returns("t", 1)).output == 1
    assert run(runner, records, AsyncReturns("t", 2)).output == 2


def test_a_value_and_a_branch_come_back_as_output_and_branch(runner, records):
    outcome = run(runner, records, Returns("t", Branch("x", value={"n": 1})))
    assert outcome.is_success
    assert (outcome.output, outcome.branch) == ({"n": 1}, ["x"])


def test_a_value_that_is_not_json_fails_the_task(runner, records):
    outcome = run(runner, records, AsyncReturns("t", {1, 2}))
    assert outcome.error is not None and outcome.error.startswith("OutputError:")


def test_a_coroutine_past_its_timeout_is_cancelled(runner, records):
    outcome = run(runner, records, AsyncSleeps("t"), TaskConfig(timeout_s=0.05))
    assert (
        outcome.error == "TimeoutError: the task ran past its timeout of 0.05 s and was cancelled"
    )


def test_a_timeout_error_of_the_tasks_own_is_not_taken_for_its_timeout(runner, records):
    outcome = run(runner, records, AsyncRaises("t", TimeoutError("the API did not answer")))
    assert outcome.error == "TimeoutError: the API did not answer"


def test_a_coroutine_told_to_stop_before_it_starts_does_not_run(runner, records):
    outcome = run(runner, records, AsyncSleeps("t"), stop_reason="executor stopped")
    assert outcome.error == "executor stopped"


def test_a_running_coroutine_told_to_stop_is_cancelled_with_the_reason(runner, records):
    started = threading.Event()

    class Waits(ppacer.BaseTask):
        async def execute(self, ctx: ppacer.TaskContext) -> None:  # type: ignore[override]
            started.set()
            await asyncio.sleep(60)

    attempt = make_attempt("t", TaskConfig())

    def lose_the_lease() -> None:
        assert started.wait(10)
        attempt.stop("executor lost its lease")

    stopper = threading.Thread(target=lose_the_lease)
    stopper.start()
    outcome = runner.run(attempt, Waits("t"), logger_to(records, "t"))
    stopper.join(10)
    assert outcome.error == "executor lost its lease"


def test_a_task_in_a_child_process_reports_its_exit_as_failure(runner, records):
    outcome = run(runner, records, Exits("t"), TaskConfig(isolation="process"))
    assert outcome.error == "SystemExit: 3"
