"""A task attempt while this executor runs it: the state its runner, supervisor and stop share."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ppacer.api.models import StatusReport, TaskToExec
from ppacer.dag.task import TaskConfig

__all__ = ["Attempt", "describe", "log_ids"]

log = logging.getLogger("ppacer.executor")


@dataclass(eq=False, slots=True)
class Attempt:
    """One running attempt; exactly one party claims its final status (:meth:`claim`).

    The runner claims it when the task returns; the supervisor when the task
    runs past its timeout in a thread or its lease is lost; :meth:`Executor.stop`
    when it gives up on a thread it cannot stop. Whoever loses drops its result.
    """

    task: TaskToExec
    config: TaskConfig
    # Monotonic time past which the attempt is timed out.
    deadline: float
    # Longest gap between heartbeats this attempt's lease allows, in seconds.
    heartbeat_s: float
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    # Set once the final status is claimed.
    done: bool = False
    # Why the attempt must stop (its lease was lost, the executor stops); read by its runner.
    stop_reason: str | None = None
    # The child process running it, or the future of its coroutine: what can stop it.
    pid: int | None = None
    future: concurrent.futures.Future[Any] | None = None
    # What stops it elsewhere (a Dask worker kills its process when told to).
    stopper: Callable[[], None] | None = None

    def claim(self) -> bool:
        """True for the first caller only: it reports (or drops) the final status."""
        with self._lock:
            if self.done:
                return False
            self.done = True
            return True

    def stop(self, reason: str) -> None:
        """Ask the attempt to stop: a child process is killed, a coroutine cancelled.

        A task in a thread cannot be stopped; its runner drops its result late.
        """
        self.stop_reason = reason
        if self.future is not None:
            self.future.cancel()
        if self.stopper is not None:
            self._call_stopper()

    @property
    def is_stoppable(self) -> bool:
        """True for a child process, a coroutine or a remote attempt (a thread can only be
        abandoned)."""
        return self.pid is not None or self.future is not None or self.stopper is not None

    def set_stopper(self, stopper: Callable[[], None]) -> None:
        """Record what stops the attempt elsewhere; call it at once if told to stop already."""
        self.stopper = stopper
        if self.stop_reason is not None:
            self._call_stopper()

    def _call_stopper(self) -> None:
        assert self.stopper is not None
        try:
            self.stopper()
        except Exception as exc:
            # Its own deadline still ends it where it runs.
            log.warning("could not tell %s to stop: %r", describe(self.task), exc)

    def set_pid(self, pid: int) -> None:
        """Record the child process running the attempt."""
        self.pid = pid


def log_ids(task: TaskToExec | StatusReport) -> dict[str, object]:
    """The attempt's identity on a log record (JSON logs show it as dag_id, run_id ...)."""
    return {
        "ppacer_dag_id": task.dag_id,
        "ppacer_exec_ts": task.exec_ts,
        "ppacer_task_id": task.task_id,
        "ppacer_retry": task.retry,
        "ppacer_run_id": task.run_id if isinstance(task, TaskToExec) else None,
    }


def describe(task: TaskToExec | StatusReport) -> str:
    """The attempt in words, for log lines (the original's form)."""
    return f"{{DagId:{task.dag_id} ExecTs:{task.exec_ts} TaskId:{task.task_id} Retry:{task.retry}}}"
