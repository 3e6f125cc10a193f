"""Running one task attempt in a child process that can be killed.

The child is forked from the executor, so it has the task objects already
(nothing is pickled but the result). Its log records and its result come back
over a pipe; the parent writes the records to the task's logger (and so to the
logs DB) and kills the child when the attempt's deadline passes, when its lease
is lost, or when the executor stops.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import multiprocessing
import os
import signal
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from ppacer.dag.task import Task, TaskContext, TaskLogger
from ppacer.executor.outcome import Outcome, failure_of, outcome_of
from ppacer.timeutils import monotonic

__all__ = ["run_in_child"]


class _PipeHandler(logging.Handler):
    def __init__(self, conn: Connection) -> None:
        super().__init__(logging.DEBUG)
        self.conn = conn

    def emit(self, record: logging.LogRecord) -> None:
        try:
            attrs = getattr(record, "ppacer_attrs", None) or {}
            self.conn.send(("log", record.levelno, record.getMessage(), dict(attrs)))
        except Exception:
            self.handleError(record)


def _child_main(task: Task, ctx_fields: dict[str, Any], conn: Connection) -> None:
    # A logger of its own, outside the inherited hierarchy: records go up the pipe only.
    logger = logging.Logger("ppacer.task")
    logger.addHandler(_PipeHandler(conn))
    task_log = TaskLogger(logger, {})
    ctx = TaskContext(logger=task_log, **ctx_fields)
    try:
        result: Any = task.execute(ctx)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        outcome = outcome_of(result)
    except BaseException as exc:
        outcome = failure_of(exc, task_log)
    conn.send(("result", outcome.error, outcome.output, outcome.branch, outcome.logged))
    conn.close()


def run_in_child(
    task: Task,
    ctx_fields: dict[str, Any],
    logger: logging.LoggerAdapter[logging.Logger],
    deadline: float,
    should_stop: Callable[[], str | None],
    on_start: Callable[[int], None],
) -> Outcome:
    """Run ``task`` in a forked child until it ends, ``deadline`` passes or ``should_stop``
    gives a reason; forward its log records to ``logger``."""
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(
        target=_child_main, args=(task, ctx_fields, sender), name="ppacer-task", daemon=True
    )
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a threaded process; the child runs task
        # code only and talks to the parent through the pipe.
        warnings.simplefilter("ignore", DeprecationWarning)
        child.start()
    sender.close()
    assert child.pid is not None
    on_start(child.pid)
    try:
        while True:
            remaining = deadline - monotonic()
            if remaining <= 0:
                _kill(child)
                return Outcome(
                    error=f"TimeoutError: the task ran past its timeout and its process "
                    f"(pid {child.pid}) was killed"
                )
            reason = should_stop()
            if reason is not None:
                _kill(child)
                return Outcome(error=f"{reason}; its process (pid {child.pid}) was killed")
            if not receiver.poll(min(remaining, 0.2)):
                continue
            try:
                message = receiver.recv()
            except EOFError:
                child.join(5)
                return Outcome(
                    error=f"ChildProcessError: the task's process exited with code "
                    f"{child.exitcode} before reporting a result"
                )
            if message[0] == "log":
                _, level, text, attrs = message
                logger.log(level, "%s", text, extra=attrs)
            else:
                _, error, output, branch, logged = message
                child.join(5)
                return Outcome(error=error, output=output, branch=branch, logged=logged)
    finally:
        receiver.close()
        if child.is_alive():
            _kill(child)


def _kill(child: multiprocessing.process.BaseProcess) -> None:
    if child.pid is not None and child.is_alive():
        os.kill(child.pid, signal.SIGKILL)
    child.join(5)
