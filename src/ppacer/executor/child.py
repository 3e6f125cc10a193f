"""The forked child of an attempt run in its own process: it runs the task and reports up a pipe.

:func:`run_child` is all the child does after the fork
(:func:`ppacer.executor.isolation.run_in_child` is the parent's side): it
closes its stdin, runs the task with a logger of its own whose records go up
the pipe (level, message with its traceback, attributes), sends the result the
same way, and leaves with ``os._exit``: none of the parent's atexit handlers,
finalizers or threads run in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any, NoReturn

from ppacer.dag.task import Task, TaskContext, TaskLogger
from ppacer.executor.outcome import failure_of, outcome_of

__all__ = ["run_child"]


class _PipeHandler(logging.Handler):
    """Sends the child's records to the parent: level, message (with its traceback), attributes."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(logging.DEBUG)
        self.conn = conn

    def emit(self, record: logging.LogRecord) -> None:
        try:
            attrs = getattr(record, "ppacer_attrs", None) or {}
            message = record.getMessage()
            if record.exc_info:
                # The exception cannot cross the pipe: its text does.
                message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            self.conn.send(("log", record.levelno, message, dict(attrs)))
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


def run_child(
    task: Task, ctx_fields: dict[str, Any], receiver: Connection, sender: Connection
) -> NoReturn:
    """The forked child: run the task, send the result, and leave at once (never returns)."""
    code = 0
    try:
        receiver.close()
        # As multiprocessing does: the task does not read the executor's stdin (which a
        # daemon or a Dask worker may not even have).
        with contextlib.suppress(Exception):
            if sys.stdin is not None:
                sys.stdin.close()
            sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the child
        _child_main(task, ctx_fields, sender)
    except BaseException:
        code = 70  # EX_SOFTWARE: the result could not be sent
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        # No atexit handlers, finalizers or threads of the parent's: just leave.
        os._exit(code)
