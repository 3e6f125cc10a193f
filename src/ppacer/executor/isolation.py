"""Running one task attempt in a child process that can be killed.

The child is forked from the executor (or from a Dask worker), so it has the
task objects already (nothing is pickled but the result). Its log records and its result come back
over a pipe; the parent writes the records to the task's logger (and so to the
logs DB) and kills the child when the attempt's deadline passes, when its lease
is lost, or when the executor stops. This module is the parent's side; what the
child does is :mod:`ppacer.executor.child`.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import time
import warnings
from collections.abc import Callable
from typing import Any

from ppacer.dag.task import Task
from ppacer.executor.child import run_child
from ppacer.executor.outcome import Outcome
from ppacer.timeutils import monotonic

__all__ = ["run_in_child"]


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
    receiver, sender = multiprocessing.Pipe(duplex=False)
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a threaded process; the child runs task
        # code only and talks to the parent through the pipe.
        warnings.simplefilter("ignore", DeprecationWarning)
        # os.fork, not multiprocessing.Process: a Dask worker is a daemonic process,
        # and multiprocessing refuses to start children from one.
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child (coverage does not follow it)
        run_child(task, ctx_fields, receiver, sender)
    sender.close()
    on_start(pid)
    exited: int | None = None
    try:
        while True:
            remaining = deadline - monotonic()
            if remaining <= 0:
                _kill(pid)
                exited = 0
                return Outcome(
                    error=f"TimeoutError: the task ran past its timeout and its process "
                    f"(pid {pid}) was killed"
                )
            reason = should_stop()
            if reason is not None:
                _kill(pid)
                exited = 0
                return Outcome(error=f"{reason}; its process (pid {pid}) was killed")
            if not receiver.poll(min(remaining, 0.2)):
                continue
            try:
                message = receiver.recv()
            except EOFError:
                exited = _reap(pid)
                return Outcome(
                    error=f"ChildProcessError: the task's process exited with code "
                    f"{exited} before reporting a result"
                )
            if message[0] == "log":
                _, level, text, attrs = message
                logger.log(level, "%s", text, extra=attrs)
            else:
                _, error, output, branch, logged = message
                exited = _reap(pid)
                return Outcome(error=error, output=output, branch=branch, logged=logged)
    finally:
        receiver.close()
        if exited is None:  # the parent's own error, e.g. in a log handler
            _kill(pid)


def _reap(pid: int, timeout_s: float = 5.0) -> int:
    """Wait for child ``pid`` to exit (killing it after ``timeout_s``); its exit code."""
    deadline = monotonic() + timeout_s
    delay = 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if monotonic() > deadline:
            _kill(pid)
            return -signal.SIGKILL
        time.sleep(delay)  # a child that sent its result is exiting: a short wait
        delay = min(0.05, delay * 2)


def _kill(pid: int) -> None:
    """Kill child ``pid`` and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
