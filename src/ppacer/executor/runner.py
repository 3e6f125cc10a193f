"""Running one task attempt: in the calling worker thread, on the event loop, or in a child.

``async def execute`` runs on the executor's event loop (started on first
use) and is cancelled at its timeout; a task with a timeout of its own (or
``isolation="process"``) runs in a child process that is killed at the
timeout (:mod:`ppacer.executor.isolation`); any other runs in the worker
thread that calls :meth:`Runner.run` (past its timeout the supervisor reports
it FAILED; a thread cannot be killed, its late result is dropped).

Whatever the task raises - ``SystemExit`` and ``KeyboardInterrupt`` too - is
that attempt's failure: the worker thread and the event loop live on to run
the next attempt.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import threading
from collections.abc import Coroutine
from typing import Any

from ppacer.api.models import TaskToExec
from ppacer.dag.task import Task, TaskContext
from ppacer.executor.attempt import Attempt
from ppacer.executor.isolation import run_in_child
from ppacer.executor.outcome import Outcome, failure_of, outcome_of
from ppacer.timeutils import monotonic, parse_ts

__all__ = ["Runner", "context_fields"]


def context_fields(t: TaskToExec) -> dict[str, Any]:
    """The :class:`TaskContext` fields of an attempt, but its logger."""
    return {
        "dag_id": t.dag_id,
        "exec_ts": parse_ts(t.exec_ts),
        "task_id": t.task_id,
        "retry": t.retry,
        "run_id": t.run_id,
        "params": t.params,
        "upstream": t.upstream,
    }


class _TaskExit(Exception):
    """A ``SystemExit``/``KeyboardInterrupt`` a coroutine raised, carried as an ordinary error.

    Raised as it is on the event loop, asyncio would let it stop the loop
    (and with it every other coroutine).
    """

    def __init__(self, exc: BaseException) -> None:
        super().__init__(exc)
        self.exc = exc


async def _contained(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        return await coro
    except (SystemExit, KeyboardInterrupt) as exc:
        raise _TaskExit(exc) from exc


class Runner:
    """Runs attempts and returns their :class:`Outcome`; owns the event loop of async tasks."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None

    def run(
        self, attempt: Attempt, task: Task, logger: logging.LoggerAdapter[logging.Logger]
    ) -> Outcome:
        """Run ``attempt`` of ``task`` until it ends, times out or is stopped (blocks)."""
        fields = context_fields(attempt.task)
        if attempt.config.runs_in_process(task):
            return run_in_child(
                task,
                fields,
                logger,
                attempt.deadline,
                lambda: attempt.stop_reason,
                attempt.set_pid,
            )
        try:
            result: Any = task.execute(TaskContext(logger=logger, **fields))
            if inspect.iscoroutine(result):
                return self._await(attempt, result, logger)
            return outcome_of(result)
        except _TaskExit as exc:
            return failure_of(exc.exc, logger)
        except BaseException as exc:
            # SystemExit and KeyboardInterrupt included: raised on, they would end
            # this worker thread and lose the attempt and every one queued after it.
            return failure_of(exc, logger)

    def _await(
        self,
        attempt: Attempt,
        coro: Coroutine[Any, Any, Any],
        logger: logging.LoggerAdapter[logging.Logger],
    ) -> Outcome:
        """Run ``coro`` on the event loop; cancel it at the deadline or when told to stop."""
        if attempt.stop_reason is not None:  # told to stop before it started
            coro.close()
            return _stopped(attempt)
        future = asyncio.run_coroutine_threadsafe(_contained(coro), self._event_loop())
        attempt.future = future
        if attempt.stop_reason is not None:  # told to stop before the future was known
            future.cancel()
        try:
            result = future.result(max(0.0, attempt.deadline - monotonic()))
        except concurrent.futures.CancelledError:
            return _stopped(attempt)
        except TimeoutError:
            if not future.done() or future.cancelled():
                future.cancel()
                return _stopped(attempt)
            # Done after all: its result, or a TimeoutError of the task's own (raised here).
            result = future.result()
        return outcome_of(result)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        """The loop async tasks run on (started on first use)."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._loop_thread = threading.Thread(
                    target=loop.run_forever, name=f"ppacer-async-{self._name}", daemon=True
                )
                self._loop_thread.start()
                self._loop = loop
            return self._loop

    def close(self) -> None:
        """Cancel the coroutines still running (waiting up to 5 s) and stop the event loop."""
        with self._lock:
            loop, thread = self._loop, self._loop_thread
        if loop is None:
            return
        # A coroutine that ignores its cancellation is left to the daemon loop thread.
        with contextlib.suppress(TimeoutError):
            asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(5.0)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(5.0)
        if not loop.is_running():
            loop.close()


async def _cancel_all() -> None:
    """Cancel every other task on this loop and wait for them to end."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _stopped(attempt: Attempt) -> Outcome:
    """The outcome of a coroutine cancelled by its deadline or a stop."""
    if attempt.stop_reason is not None:
        return Outcome(error=attempt.stop_reason)
    return Outcome(
        error=f"TimeoutError: the task ran past its timeout of "
        f"{attempt.config.timeout_s:g} s and was cancelled"
    )
