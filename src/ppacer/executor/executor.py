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
- :class:`~ppacer.executor.supervisor.Supervisor` - heartbeats, timeouts, lost leases;
- :class:`~ppacer.executor.registration.Registrar` - what it serves and has, told to the
  scheduler on start and after every outage;
- :class:`~ppacer.executor.tasklogs.TaskLogs` - task logs: shipped to the scheduler
  (no database here), or to a handler or logs DB given;
- :class:`~ppacer.executor.dask_runner.DaskRunner` - attempts run on a Dask cluster.

A problem waiting will not fix (a wrong token, an incompatible scheduler, a
URL that is no ppacer scheduler, an untrusted certificate) ends the poll loop
with one log line; :attr:`Executor.error` holds it (``ppacer executor`` exits 2).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ppacer.api.client import Client
from ppacer.api.models import StatusReport, TaskToExec
from ppacer.backoff import Backoff
from ppacer.dag.dag import Dag, Registry
from ppacer.dag.node import TaskInfo
from ppacer.dag.status import TaskStatus
from ppacer.dag.task import task_logger
from ppacer.errors import ConflictError, NotFoundError, SchedulerUnavailableError
from ppacer.executor.attempt import Attempt, describe, log_ids
from ppacer.executor.logship import DEFAULT_LOG_SHIPPING, LogShipping
from ppacer.executor.outcome import Outcome
from ppacer.executor.registration import ExecutorConfigError, Registrar, config_problem
from ppacer.executor.reporter import Reporter
from ppacer.executor.runner import Runner
from ppacer.executor.supervisor import RUN_DEADLINE_HEARTBEAT_S, Supervisor
from ppacer.executor.tasklogs import TaskLogs
from ppacer.executor.workers import WorkerPool
from ppacer.timeutils import monotonic

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ppacer.executor.dask_runner import DaskRunner

__all__ = ["RUN_DEADLINE_HEARTBEAT_S", "Executor"]

log = logging.getLogger("ppacer.executor")


class Executor:
    """Runs the tasks the scheduler hands out, up to ``concurrency`` at once.

    ``scheduler`` is its URL or a :class:`Client` (give a client for a token
    or a CA). Task logs are shipped to the scheduler (``log_shipping`` says
    how), or go to ``log_handler`` (any :class:`logging.Handler`), or to the
    logs DB at ``logs_db`` (a path, URL or engine). It serves the ``queues``
    named, shows the scheduler its ``labels``, and with ``dask`` (a Dask
    scheduler's address) runs each attempt on that cluster; ``dask_upload``
    names DAG files to send to the workers.
    """

    def __init__(
        self,
        scheduler: str | Client,
        registry: Registry,
        *,
        logs_db: str | Engine | None = None,
        log_handler: logging.Handler | None = None,
        log_shipping: LogShipping = DEFAULT_LOG_SHIPPING,
        concurrency: int = 8,
        poll_wait_s: float = 10.0,
        name: str | None = None,
        queues: Sequence[str] = ("default",),
        labels: Mapping[str, str] | None = None,
        dask: str | None = None,
        dask_upload: Sequence[str] = (),
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.client = (
            scheduler if isinstance(scheduler, Client) else Client(scheduler, timeout_s=15.0)
        )
        self.registry = registry
        self.concurrency = concurrency
        #: Longest wait of one task poll (a long poll), also the longest stop wait for it.
        self.poll_wait_s = poll_wait_s
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        #: Why the poll loop ended for good, if it did (a configuration problem).
        self.error: ExecutorConfigError | None = None
        # One logger object per executor, child of "ppacer.task" so records also reach the console.
        self.task_log = logging.Logger("ppacer.task")
        self.task_log.parent = logging.getLogger("ppacer.task")
        self.task_log.setLevel(logging.DEBUG)
        self._logs = TaskLogs(
            self.task_log,
            self.client,
            self.name,
            logs_db=logs_db,
            log_handler=log_handler,
            shipping=log_shipping,
        )
        #: The log shipper, when task logs are shipped (neither logs_db nor log_handler given).
        self.shipper = self._logs.shipper
        self._registrar = Registrar(
            self.client, self.name, registry, list(queues), dict(labels or {})
        )
        # Tasks of registries replaced by reload(), by (DAG id, task id, code version).
        self._retained: dict[tuple[str, str, str], tuple[Dag, TaskInfo]] = {}
        self._dask: DaskRunner | None = None
        if dask is not None:
            from ppacer.executor.dask_runner import DaskRunner  # only with a cluster

            self._dask = DaskRunner.for_executor(
                dask, self.client, self.name, self.shipper, upload_files=tuple(dask_upload)
            )

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
        self._ended = threading.Event()
        self._thread: threading.Thread | None = None
        # Register before the next poll: on start, and after every outage.
        self._needs_register = True
        # Batch pops until the scheduler says it has none (the original's).
        self._batch = True
        # With several scheduler URLs (a standby set-up) a takeover takes seconds and a
        # standby answers at once: polls while it lasts are cheap, and keep it short.
        several = len(self.client.urls) > 1
        self._unreachable = Backoff.exponential(first_s=0.1, cap_s=1.0 if several else 5.0)
        # A scheduler without long polls answers "nothing" at once: back off linearly to 1 s.
        self._empty = Backoff.linear(step_s=0.001, cap_s=1.0)
        # Tasks handed over that this executor lacks, said once each.
        self._lacking: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ life cycle

    def run(self) -> None:
        """Poll, run and report until :meth:`stop` is called (blocks).

        Raises :class:`ExecutorConfigError` (and stops polling) when the
        scheduler refuses this executor for a reason waiting will not fix.
        """
        log.info(
            "executor %s polling %s (concurrency %d)", self.name, self.client.url, self.concurrency
        )
        try:
            if self._dask is not None:
                self._dask.connect()
            self._reporter.start()
            self._loop()
        except ExecutorConfigError as exc:
            self.error = exc
            self._stop.set()
            raise
        finally:
            self._ended.set()

    def _loop(self) -> None:
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
        """Run :meth:`run` in a background thread; return self.

        A configuration problem ends that thread with one log line (ERROR) and
        :attr:`error` set; :meth:`wait` returns then.
        """
        self._thread = threading.Thread(
            target=self._run_logged, name=f"ppacer-executor-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def _run_logged(self) -> None:
        try:
            self.run()
        except ExecutorConfigError as exc:
            log.error("%s", exc)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until a stop is asked for or the poll loop ends (see :attr:`error`);
        True if either happened."""
        return self._ended.wait(timeout_s)

    def request_stop(self) -> None:
        """Ask the poll loop to end, without waiting (safe in a signal handler);
        :meth:`stop` then waits for the running tasks."""
        self._stop.set()
        self._ended.set()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop polling and wait up to ``timeout_s`` for running tasks; True if all finished.

        A long poll in flight is awaited first (at most ``poll_wait_s``), and a
        task it hands over still runs. Attempts still running after the deadline:
        child processes are killed and coroutines cancelled, and reported FAILED
        (retried per their config). A thread cannot be stopped: its attempt is
        left RUNNING for the scheduler (queued again by a restarted scheduler,
        or failed as "executor lost" when its lease expires); worker threads are
        daemons, so it does not keep the process alive. Task log lines still
        queued are shipped until the deadline.
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
        if self._dask is not None:
            self._dask.close()
        self._logs.close(deadline, deliver=self.error is None)
        self.client.close()
        return finished

    # ------------------------------------------------------------------ polling

    def _poll(self, max_n: int) -> list[TaskToExec]:
        """Up to ``max_n`` attempts (a long poll); none when the scheduler cannot be reached.

        Registers first when due (on start, after an outage).
        """
        try:
            if self._needs_register:
                terms = self._registrar.register()
                self._needs_register = False
                if terms is not None and self.poll_wait_s > terms.maxPopWaitS:
                    # Longer polls would be refused (400) one after the other.
                    log.warning(
                        "poll_wait_s %.1f s is longer than the scheduler takes "
                        "(max_pop_wait_s %.1f s): polling with %.1f s",
                        self.poll_wait_s,
                        terms.maxPopWaitS,
                        terms.maxPopWaitS,
                    )
                    self.poll_wait_s = terms.maxPopWaitS
                # Heartbeats start once the scheduler took this executor (not before:
                # a wrong token would be said twice).
                self._supervisor.start()
            if self._batch:
                try:
                    tasks = self.client.get_tasks(max_n, self.poll_wait_s, self.name)
                except NotFoundError as exc:
                    if _asks_to_register(exc):
                        raise
                    log.info("the scheduler has no batch endpoints; popping one task at a time")
                    self._batch = False
            if not self._batch:
                task = self.client.get_task(wait_s=self.poll_wait_s, executor=self.name)
                tasks = [task] if task is not None else []
        except SchedulerUnavailableError as exc:
            if self._unreachable.steps == 0:
                log.warning("scheduler unreachable (%s); retrying with backoff", exc)
            # A restarted scheduler has forgotten who registered.
            self._needs_register = self._registrar.is_supported
            self._unreachable.wait(self._stop)
            return []
        except ExecutorConfigError:
            raise
        except Exception as exc:
            problem = config_problem(exc, self.client.url)
            if problem is not None:
                raise ExecutorConfigError(problem) from exc
            if isinstance(exc, NotFoundError | ConflictError) and _asks_to_register(exc):
                log.info("the scheduler does not know this executor (%s); registering again", exc)
                self._needs_register = True
                return []
            log.exception("unexpected answer to a task poll; polling again")
            self._unreachable.wait(self._stop)
            return []
        if self._unreachable.steps:
            log.info("scheduler reachable again")
            self._unreachable.reset()
        return tasks

    # ------------------------------------------------------------------ one attempt

    def reload(self, registry: Registry) -> None:
        """Run new attempts with ``registry``'s code (a hot reload); thread-safe.

        The tasks of the registry it replaces are kept by code version: attempts
        of runs that started on them still run with the code they started with.
        The executor registers again, announcing both.
        """
        for dag in self.registry.values():
            for info in dag.tasks.values():
                self._retained.setdefault((dag.id, info.task_id, info.code_version), (dag, info))
        self.registry = self._registrar.registry = registry
        retained: dict[str, dict[str, list[str]]] = {}
        for dag_id, task_id, version in self._retained:
            current = registry.get(dag_id)
            now = current.tasks.get(task_id) if current is not None else None
            if now is None or now.code_version != version:
                retained.setdefault(dag_id, {}).setdefault(task_id, []).append(version)
        self._registrar.retained = retained
        self._needs_register = True

    def _task(self, task: TaskToExec) -> tuple[Dag | None, TaskInfo | None]:
        """The DAG and task to run ``task`` with: of its code version if this executor has it."""
        dag = self.registry.get(task.dag_id)
        info = dag.tasks.get(task.task_id) if dag is not None else None
        wanted = task.code_version
        if wanted is not None and (info is None or info.code_version != wanted):
            kept = self._retained.get((task.dag_id, task.task_id, wanted))
            if kept is not None:
                return kept
        return dag, info

    def _execute(self, task: TaskToExec) -> TaskToExec | None:
        """Run one attempt in this worker thread and report how it ended; return the
        attempt taken with the report, which this worker runs next."""
        dag, info = self._task(task)
        if dag is None or info is None:
            self._lacks(task, f"DAG {task.dag_id!r}" if dag is None else f"task {task.task_id!r}")
            return None
        # A scheduler that marks attempts RUNNING as it hands them out saves a round trip.
        if task.status != TaskStatus.RUNNING and not self._reporter.send(
            StatusReport.for_task(task, TaskStatus.RUNNING)
        ):
            return None
        attempt = self._supervisor.watch(
            task,
            info.config,
            has_run_deadline=dag.attributes.run_timeout_s is not None,
            grace_s=self._dask.grace_s if self._dask is not None else 0.0,
        )
        logger = task_logger(
            self.task_log, task.dag_id, task.exec_ts, task.task_id, task.retry, task.run_id
        )
        log.info("Start executing task %s", describe(task), extra=log_ids(task))
        started = monotonic()
        try:
            if self._dask is not None:
                outcome, next_seq = self._dask.run(attempt, dag, info, logger)
                # The worker numbered the lines it shipped: number ours after them.
                self._logs.continue_at(task, next_seq)
            else:
                outcome = self._runner.run(attempt, info.task, logger)
            return self._finish(attempt, outcome, logger, started, _readies_a_child(dag, info))
        finally:
            # Once its report is queued: stop() waits for stopped attempts to get this far.
            self._supervisor.forget(attempt)

    def _lacks(self, task: TaskToExec, what: str) -> None:
        """An attempt of a task this executor does not have (the scheduler did not know)."""
        if task.lease_token is None:
            # No lease would ever take it back (an old scheduler): fail it, as the original.
            error = f"LookupError: this executor's registry has no {what}"
            self._reporter.put(StatusReport.for_task(task, TaskStatus.FAILED, error))
            return
        # Not reported and not heartbeaten: its lease runs out and the scheduler takes it
        # back for an executor that has it; failing it here would burn a retry.
        if (task.dag_id, task.task_id) not in self._lacking:
            self._lacking.add((task.dag_id, task.task_id))
            log.warning(
                "handed %s, but this executor has no %s: not running it; the scheduler "
                "takes it back when its lease runs out",
                describe(task),
                what,
                extra=log_ids(task),
            )

    def _finish(
        self,
        attempt: Attempt,
        outcome: Outcome,
        logger: logging.LoggerAdapter[logging.Logger],
        started: float,
        readies_a_child: bool = False,
    ) -> TaskToExec | None:
        """Report how an attempt ended (unless its status was claimed); return the attempt
        taken with the report (one round trip a hop), if any.

        ``readies_a_child``: a success of this task alone makes a child ready (see
        :func:`_readies_a_child`)."""
        task = attempt.task
        if outcome.error is not None and not outcome.logged:
            logger.error("task failed: %s", outcome.error)
        if not attempt.claim():
            log.warning(
                "dropping the late result of %s: it timed out or its lease was lost",
                describe(task),
                extra=log_ids(task),
            )
            return None
        log.info(
            "Finished executing task %s duration=%.1fms",
            describe(task),
            (monotonic() - started) * 1000,
            extra=log_ids(task),
        )
        # Every line is stored before the attempt shows as finished (bounded wait).
        self._logs.finish(task)
        status = TaskStatus.SUCCESS if outcome.is_success else TaskStatus.FAILED
        report = StatusReport.for_task(
            task, status, outcome.error, output=outcome.output, branch=outcome.branch
        )
        if (
            outcome.is_success
            and readies_a_child
            and self._workers.running == 1
            and not self._stop.is_set()
        ):
            # The only attempt running, whose success makes a child ready (a chain of
            # tasks): ask for the next with its report, one round trip a hop. Other reports
            # go in batches (the reporter thread's, and the poll loop's pops): fewer
            # requests and transactions where many attempts finish side by side, or where
            # a report readies nothing (the tasks of a wide run before its join).
            taken = self._reporter.deliver_and_take(report, self.name)
            if taken is not None:
                return taken[0] if taken else None
        self._reporter.put(report)
        return None


def _readies_a_child(dag: Dag, info: TaskInfo) -> bool:
    """Whether the task is a link of a chain: its one child has no other parent, so its
    success makes that child ready (unless a trigger rule says otherwise) and the report
    may as well ask for it. A task with several children (a fan-out) reports as any other:
    the poll loop takes its children in one batch."""
    return len(info.children) == 1 and dag.tasks[info.children[0]].parents == (info.task_id,)


def _asks_to_register(exc: Exception) -> bool:
    """True for a refusal that says the scheduler does not know this executor."""
    return "regist" in str(exc).lower()
