"""The executor: pops task attempts from the scheduler, runs them, reports their status.

It talks to the scheduler only through :class:`~ppacer.api.client.Client`
and never opens the scheduler's database, so any number of executors can run
in other processes or on other machines. Nothing a task or the scheduler does
stops the loop: a task that raises (even ``SystemExit``) is reported FAILED;
an unreachable scheduler is polled again with back-off (logged once per
outage); a status report that cannot be delivered is retried, not dropped.

This module is the poll loop and the life cycle; the parts it ties together:

- :class:`~ppacer.executor.workers.WorkerPool` - the worker threads and their slots;
- :class:`~ppacer.executor.runner.Runner` - runs one attempt (thread, coroutine, child);
- :class:`~ppacer.executor.reporter.Reporter` - delivers status reports;
- :class:`~ppacer.executor.supervisor.Supervisor` - heartbeats, timeouts, lost leases.

Task logs go to the ``log_handler`` given (or one writing to ``logs_db``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ppacer.api.client import Client
from ppacer.api.models import StatusReport, TaskToExec
from ppacer.backoff import Backoff
from ppacer.dag.dag import Registry
from ppacer.dag.status import TaskStatus
from ppacer.dag.task import task_logger
from ppacer.errors import NotFoundError, SchedulerUnavailableError
from ppacer.executor.attempt import Attempt, describe, log_ids
from ppacer.executor.outcome import Outcome
from ppacer.executor.reporter import Reporter
from ppacer.executor.runner import Runner
from ppacer.executor.supervisor import RUN_DEADLINE_HEARTBEAT_S, Supervisor
from ppacer.executor.workers import WorkerPool
from ppacer.timeutils import monotonic

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["RUN_DEADLINE_HEARTBEAT_S", "Executor"]

log = logging.getLogger("ppacer.executor")


class Executor:
    """Runs the tasks the scheduler hands out, up to ``concurrency`` at once.

    ``scheduler`` is its URL or a :class:`Client`. Task logs are stored by
    ``log_handler`` (any :class:`logging.Handler`), or in the logs DB at
    ``logs_db`` (a path, URL or engine), or not at all.
    """

    def __init__(
        self,
        scheduler: str | Client,
        registry: Registry,
        *,
        logs_db: str | Engine | None = None,
        log_handler: logging.Handler | None = None,
        concurrency: int = 8,
        poll_wait_s: float = 10.0,
        name: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if logs_db is not None and log_handler is not None:
            raise ValueError("give the executor logs_db or log_handler, not both")
        self.client = (
            scheduler if isinstance(scheduler, Client) else Client(scheduler, timeout_s=15.0)
        )
        self.registry = registry
        self.concurrency = concurrency
        #: Longest wait of one task poll (a long poll), also the longest stop wait for it.
        self.poll_wait_s = poll_wait_s
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        # One logger object per executor, child of "ppacer.task" so records also reach the console.
        self.task_log = logging.Logger("ppacer.task")
        self.task_log.parent = logging.getLogger("ppacer.task")
        self.task_log.setLevel(logging.DEBUG)
        self._close_log_handler = _add_log_handler(self.task_log, logs_db, log_handler)

        self._workers = WorkerPool(concurrency, self.name, self._execute)
        self._runner = Runner(self.name)
        self._reporter = Reporter(self.client, self.name)
        self._supervisor = Supervisor(
            self.client,
            self.name,
            self._reporter,
            capacity=concurrency,
            running=lambda: self._workers.running,
        )
        # The poll loop's own state.
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Batch pops until the scheduler says it has none (the original's).
        self._batch = True
        self._unreachable = Backoff.exponential(first_s=0.1, cap_s=5.0)
        # A scheduler without long polls answers "nothing" at once: back off linearly to 1 s.
        self._empty = Backoff.linear(step_s=0.001, cap_s=1.0)

    # ------------------------------------------------------------------ life cycle

    def run(self) -> None:
        """Poll, run and report until :meth:`stop` is called (blocks)."""
        log.info(
            "executor %s polling %s (concurrency %d)", self.name, self.client.url, self.concurrency
        )
        self._reporter.start()
        self._supervisor.start()
        while not self._stop.is_set():
            free = self._workers.reserve(self._stop)
            if not free:
                return
            handed_off = 0
            try:
                started = monotonic()
                tasks = self._poll(free)
                for task in tasks:
                    self._workers.submit(task)
                    handed_off += 1
                if tasks:
                    self._empty.reset()
                elif not self._stop.is_set() and monotonic() - started < self.poll_wait_s / 2:
                    self._empty.wait(self._stop)
            finally:
                self._workers.release(free - handed_off)

    def start(self) -> Executor:
        """Run :meth:`run` in a background thread; return self."""
        self._thread = threading.Thread(
            target=self.run, name=f"ppacer-executor-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop polling and wait up to ``timeout_s`` for running tasks; True if all finished.

        A long poll in flight is awaited first (at most ``poll_wait_s``), and a
        task it hands over still runs. Attempts still running after the deadline:
        child processes are killed and coroutines cancelled, and reported FAILED
        (retried per their config). A thread cannot be stopped: its attempt is
        left RUNNING for the scheduler (queued again by a restarted scheduler,
        or failed as "executor lost" when its lease expires); worker threads are
        daemons, so it does not keep the process alive.
        """
        self._stop.set()
        deadline = monotonic() + timeout_s
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.poll_wait_s + self.client.timeout_s)
        finished = self._workers.wait_idle(deadline)
        if not finished:
            log.warning(
                "executor %s stopping with %d tasks still running",
                self.name,
                self._workers.running,
            )
            self._reporter.give_up()
            self._supervisor.abandon("executor stopped: the shutdown deadline passed")
        self._supervisor.stop()
        self._reporter.stop(deadline)  # sends what is queued first
        self._workers.stop(join=finished)
        self._runner.close()
        self.client.close()
        self._close_log_handler()
        return finished

    # ------------------------------------------------------------------ polling

    def _poll(self, max_n: int) -> list[TaskToExec]:
        """Up to ``max_n`` attempts (a long poll); none when the scheduler cannot be reached."""
        try:
            if self._batch:
                try:
                    tasks = self.client.get_tasks(max_n, self.poll_wait_s, self.name)
                except NotFoundError:
                    log.info("the scheduler has no batch endpoints; popping one task at a time")
                    self._batch = False
            if not self._batch:
                task = self.client.get_task(wait_s=self.poll_wait_s, executor=self.name)
                tasks = [task] if task is not None else []
        except SchedulerUnavailableError as exc:
            if self._unreachable.steps == 0:
                log.warning("scheduler unreachable (%s); retrying with backoff", exc)
            self._unreachable.wait(self._stop)
            return []
        except Exception:
            log.exception("unexpected answer to a task poll; polling again")
            self._unreachable.wait(self._stop)
            return []
        if self._unreachable.steps:
            log.info("scheduler reachable again")
            self._unreachable.reset()
        return tasks

    # ------------------------------------------------------------------ one attempt

    def _execute(self, task: TaskToExec) -> None:
        """Run one attempt in this worker thread and report how it ended."""
        dag = self.registry.get(task.dag_id)
        node = dag.tasks.get(task.task_id) if dag is not None else None
        if dag is None or node is None:
            what = f"DAG {task.dag_id!r}" if dag is None else f"task {task.task_id!r}"
            error = f"LookupError: this executor's registry has no {what}"
            self._reporter.put(StatusReport.for_task(task, TaskStatus.FAILED, error))
            return
        # A scheduler that marks attempts RUNNING as it hands them out saves a round trip.
        if task.status != TaskStatus.RUNNING and not self._reporter.send(
            StatusReport.for_task(task, TaskStatus.RUNNING)
        ):
            return
        attempt = self._supervisor.watch(
            task, node.config, has_run_deadline=dag.attributes.run_timeout_s is not None
        )
        logger = task_logger(
            self.task_log, task.dag_id, task.exec_ts, task.task_id, task.retry, task.run_id
        )
        log.info("Start executing task %s", describe(task), extra=log_ids(task))
        started = monotonic()
        try:
            outcome = self._runner.run(attempt, node.task, logger)
            self._finish(attempt, outcome, logger, started)
        finally:
            # Once its report is queued: stop() waits for stopped attempts to get this far.
            self._supervisor.forget(attempt)

    def _finish(
        self,
        attempt: Attempt,
        outcome: Outcome,
        logger: logging.LoggerAdapter[logging.Logger],
        started: float,
    ) -> None:
        """Queue the final report of an attempt that ended (unless its status was claimed)."""
        task = attempt.task
        if outcome.error is not None and not outcome.logged:
            logger.error("task failed: %s", outcome.error)
        if not attempt.claim():
            log.warning(
                "dropping the late result of %s: it timed out or its lease was lost",
                describe(task),
                extra=log_ids(task),
            )
            return
        log.info(
            "Finished executing task %s duration=%.1fms",
            describe(task),
            (monotonic() - started) * 1000,
            extra=log_ids(task),
        )
        status = TaskStatus.SUCCESS if outcome.is_success else TaskStatus.FAILED
        self._reporter.put(
            StatusReport.for_task(
                task, status, outcome.error, output=outcome.output, branch=outcome.branch
            )
        )


def _add_log_handler(
    logger: logging.Logger, logs_db: str | Engine | None, handler: logging.Handler | None
) -> Callable[[], None]:
    """Attach the task-log handler; return what undoes it at stop (closing what it opened)."""
    if logs_db is None:
        if handler is None:
            return lambda: None
        given = handler
        logger.addHandler(given)
        # Records a task stuck past the stop logs from now on go to the console only.
        return lambda: logger.removeHandler(given)

    from ppacer.tasklog import open_log_handler  # opens a database: only when asked to

    opened = open_log_handler(logs_db)
    logger.addHandler(opened)

    def close() -> None:
        logger.removeHandler(opened)
        opened.close()
        if isinstance(logs_db, str):  # an engine passed in is the caller's to dispose
            opened.engine.dispose()

    return close
