"""The executor: pops task attempts from the scheduler, runs them, reports their status.

It talks to the scheduler only through :class:`~ppacer.api.client.Client`
and never opens the scheduler's database, so any number of executors can run
in other processes or on other machines. Task logs go to the logs DB given to
it. Nothing a task or the scheduler does stops the loop: a task that raises is
reported FAILED; an unreachable scheduler is retried with backoff (logged once
per outage); a status report that cannot be delivered is retried, not dropped.

Where an attempt runs: ``async def execute`` on the executor's event loop; a
task with a timeout of its own (or ``isolation="process"``) in a child process
that is killed at the timeout; any other in a worker thread (past its timeout
it is reported FAILED and its late result discarded - a thread cannot be
killed). A supervisor thread heartbeats the leases of running attempts - but
not of those past their timeout, so a stuck task does not look alive - every
third of the lease, and at least every ``RUN_DEADLINE_HEARTBEAT_S`` while an
attempt of a DAG with a run deadline runs, so a run failed by its deadline has
its tasks stopped soon. Worker threads are daemons: once :meth:`Executor.stop`
has given up on a stuck thread task (left RUNNING for the scheduler) the process can exit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import math
import os
import queue
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from ppacer.api.client import Client
from ppacer.api.models import StatusReport, TaskToExec
from ppacer.dag.dag import Registry
from ppacer.dag.status import TaskStatus
from ppacer.dag.task import TaskConfig, TaskContext, task_logger
from ppacer.db.engine import open_logs_db
from ppacer.errors import ConflictError, InvalidInputError, NotFoundError, SchedulerUnavailableError
from ppacer.executor.isolation import Outcome, outcome_of, run_in_child
from ppacer.tasklog import TaskLogHandler
from ppacer.timeutils import monotonic, parse_ts

__all__ = ["RUN_DEADLINE_HEARTBEAT_S", "Executor"]

log = logging.getLogger("ppacer.executor")

#: Longest gap between heartbeats, in seconds, while an attempt of a DAG with a
#: ``run_timeout_s`` runs: the heartbeat is how the executor learns that the run
#: was failed by its deadline (its lease is gone) and stops the task.
RUN_DEADLINE_HEARTBEAT_S = 2.0


@dataclass(frozen=True, slots=True)
class _Final:
    """A final status report waiting to be sent."""

    task: TaskToExec
    status: TaskStatus
    error: str | None
    outcome: Outcome | None


@dataclass(eq=False)
class _Attempt:
    """A task attempt this executor runs."""

    task: TaskToExec
    config: TaskConfig
    deadline: float
    # Longest gap between heartbeats this attempt's lease allows, in seconds.
    heartbeat_s: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Set once the final status is claimed (by the runner, the timeout or a lost lease).
    done: bool = False
    # Why the attempt must stop (its lease was lost, the executor stops).
    stop_reason: str | None = None
    pid: int | None = None
    future: concurrent.futures.Future[Any] | None = None

    @property
    def task_key(self) -> tuple[str, str, str, int]:
        """(dag_id, exec_ts, task_id, retry)."""
        return (self.task.dag_id, self.task.exec_ts, self.task.task_id, self.task.retry)

    def claim(self) -> bool:
        """True for the first caller only: it reports (or drops) the final status."""
        with self.lock:
            if self.done:
                return False
            self.done = True
            return True


class Executor:
    """Runs the tasks the scheduler hands out, up to ``concurrency`` at once, in threads."""

    def __init__(
        self,
        scheduler: str | Client,
        registry: Registry,
        *,
        logs_db: str | Engine | None = None,
        concurrency: int = 8,
        poll_wait_s: float = 10.0,
        name: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.client = (
            scheduler if isinstance(scheduler, Client) else Client(scheduler, timeout_s=15.0)
        )
        self.registry = registry
        self.concurrency = concurrency
        self.poll_wait_s = poll_wait_s
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self._slots = threading.Semaphore(concurrency)
        self._attempts: dict[tuple[str, str, str, int], _Attempt] = {}
        self._supervisor_wake = threading.Condition(threading.Lock())
        # Set (under the condition's lock) when something the supervisor plans by changed
        # while it was busy, e.g. in a heartbeat: its next wait is skipped, not missed.
        self._supervisor_dirty = False
        self._supervisor: threading.Thread | None = None
        self._heartbeat_s = 10.0
        self._heartbeat_failing = False
        # Batch endpoints (pop several, report several) until the scheduler says it has none.
        self._batch = True
        # Final reports, sent by the reporter thread (several per request when they pile up).
        self._outgoing: queue.SimpleQueue[_Final | None] = queue.SimpleQueue()
        self._reporter: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        # Attempts handed to the worker threads (daemons, started as needed up to
        # `concurrency`; a stuck task must not keep the process alive past stop()).
        self._work: queue.SimpleQueue[TaskToExec | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._stop = threading.Event()
        self._abandon = threading.Event()
        self._thread: threading.Thread | None = None
        self._unreachable = False
        self._backoff = 0.05
        self._running = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        # One logger object per executor, child of "ppacer.task" so records also reach the console.
        self.task_log = logging.Logger("ppacer.task")
        self.task_log.parent = logging.getLogger("ppacer.task")
        self.task_log.setLevel(logging.DEBUG)
        self.logs_engine = open_logs_db(logs_db) if logs_db is not None else None
        self._owns_logs_engine = logs_db is not None and not isinstance(logs_db, Engine)
        if self.logs_engine is not None:
            self.task_log.addHandler(TaskLogHandler(self.logs_engine))

    # ------------------------------------------------------------------ life cycle

    def run(self) -> None:
        """Poll, run and report until :meth:`stop` is called (blocks)."""
        log.info(
            "executor %s polling %s (concurrency %d)", self.name, self.client.url, self.concurrency
        )
        if self._supervisor is None:
            self._supervisor = threading.Thread(
                target=self._supervise, name=f"ppacer-supervisor-{self.name}", daemon=True
            )
            self._supervisor.start()
        if self._reporter is None:
            self._reporter = threading.Thread(
                target=self._send_reports, name=f"ppacer-reporter-{self.name}", daemon=True
            )
            self._reporter.start()
        empty_polls = 0
        while not self._stop.is_set():
            while not self._slots.acquire(timeout=0.5):
                if self._stop.is_set():
                    return
            # Ask for as many tasks as there are free slots, in one request.
            free = 1
            while free < self.concurrency and self._slots.acquire(blocking=False):
                free += 1
            handed_off = 0
            try:
                started = monotonic()
                tasks = self._poll(free)
                for task in tasks:
                    self._begin()
                    self._submit(task)
                    handed_off += 1
                if tasks:
                    empty_polls = 0
                elif not self._stop.is_set() and monotonic() - started < self.poll_wait_s / 2:
                    # A scheduler without long polls answered at once: back off linearly to 1 s.
                    empty_polls += 1
                    self._stop.wait(min(1.0, 0.001 * empty_polls))
            finally:
                for _ in range(free - handed_off):
                    self._slots.release()

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
        # A long poll in flight may still hand over a task: it is run, not dropped.
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.poll_wait_s + self.client.timeout_s)
        with self._idle:
            while self._running and monotonic() < deadline:
                self._idle.wait(max(0.0, deadline - monotonic()))
            finished = self._running == 0
        if not finished:
            log.warning(
                "executor %s stopping with %d tasks still running", self.name, self._running
            )
            self._abandon.set()
            # Child processes are killed and coroutines cancelled (their runners report
            # them FAILED). A thread cannot be stopped: its attempt stays RUNNING for
            # the scheduler to recover (a restart queues it again, a lost lease retries
            # it), and its late result, if any, is dropped.
            killable = []
            reason = "executor stopped: the shutdown deadline passed"
            for attempt in list(self._attempts.values()):
                attempt.stop_reason = reason
                if attempt.future is not None:
                    attempt.future.cancel()
                if attempt.future is not None or attempt.pid is not None:
                    killable.append(attempt)
                elif attempt.claim():
                    log.warning(
                        "%s is still running in its thread; left RUNNING for the scheduler",
                        _describe(attempt.task),
                        extra=_ids(attempt.task),
                    )
            with self._idle:
                self._idle.wait_for(
                    lambda: all(a.task_key not in self._attempts for a in killable), timeout=5.0
                )
        self._wake_supervisor()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(5.0)
        # The reporter sends what is queued, then ends.
        self._outgoing.put(None)
        if self._reporter is not None and self._reporter is not threading.current_thread():
            self._reporter.join(max(1.0, deadline - monotonic()) + 5.0)
        for _ in self._workers:
            self._work.put(None)
        if finished:
            for worker in self._workers:
                worker.join(5.0)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join(5.0)
            if not self._loop.is_running():
                self._loop.close()
        self.client.close()
        if self._owns_logs_engine and self.logs_engine is not None:
            self.logs_engine.dispose()
        return finished

    def _begin(self) -> None:
        with self._lock:
            self._running += 1

    def _end(self) -> None:
        with self._idle:
            self._running -= 1
            self._idle.notify_all()
        self._slots.release()

    # ------------------------------------------------------------------ polling and reporting

    def _poll(self, max_n: int) -> list[TaskToExec]:
        try:
            if self._batch:
                try:
                    tasks = self.client.get_tasks(max_n, self.poll_wait_s, self.name)
                except NotFoundError:
                    log.info("the scheduler has no batch endpoints; popping one task at a time")
                    self._batch = False
                    tasks = []
            if not self._batch:
                task = self.client.get_task(wait_s=self.poll_wait_s, executor=self.name)
                tasks = [task] if task is not None else []
        except SchedulerUnavailableError as exc:
            self._on_unreachable(exc)
            return []
        except Exception:
            log.exception("unexpected answer to a task poll; polling again")
            self._stop.wait(1.0)
            return []
        self._on_reachable()
        return tasks

    def _on_unreachable(self, exc: Exception) -> None:
        if not self._unreachable:
            self._unreachable = True
            log.warning("scheduler unreachable (%s); retrying with backoff", exc)
        self._backoff = min(5.0, self._backoff * 2)
        self._stop.wait(self._backoff)

    def _on_reachable(self) -> None:
        self._backoff = 0.05
        if self._unreachable:
            self._unreachable = False
            log.info("scheduler reachable again")

    def _report(
        self,
        task: TaskToExec,
        status: TaskStatus,
        error: str | None = None,
        outcome: Outcome | None = None,
    ) -> bool:
        """Deliver a status report, retrying while the scheduler is unreachable.

        Returns False when the scheduler refused it (4xx) or the executor gave up
        at its stop deadline.
        """
        delay = 0.05
        output = outcome.output if outcome is not None else None
        branch = outcome.branch if outcome is not None else None
        while True:
            try:
                self.client.upsert_task_status(task, status, error, output=output, branch=branch)
                self._on_reachable()
                return True
            except (ConflictError, NotFoundError, InvalidInputError) as exc:
                log.warning(
                    "scheduler refused %s for %s: %s",
                    status,
                    _describe(task),
                    exc,
                    extra=_ids(task),
                )
                return False
            except Exception as exc:
                if self._abandon.is_set():
                    log.error(
                        "giving up reporting %s for %s: %s",
                        status,
                        _describe(task),
                        exc,
                        extra=_ids(task),
                    )
                    return False
                if not self._unreachable:
                    self._unreachable = True
                    log.warning(
                        "cannot report %s for %s (%s); retrying",
                        status,
                        _describe(task),
                        exc,
                        extra=_ids(task),
                    )
                self._abandon.wait(delay)
                delay = min(5.0, delay * 2)

    def _report_final(
        self,
        task: TaskToExec,
        status: TaskStatus,
        error: str | None = None,
        outcome: Outcome | None = None,
    ) -> None:
        """Queue a final report; the reporter thread delivers it (retrying, never dropping)."""
        if self._reporter is None:  # not started through run(): report inline
            self._report(task, status, error, outcome)
            return
        self._outgoing.put(_Final(task, status, error, outcome))

    def _send_reports(self) -> None:
        """The reporter thread: send queued final reports, batching what has piled up."""
        while True:
            first = self._outgoing.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < 200:
                try:
                    item = self._outgoing.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._deliver(batch)
            if stop:
                return

    def _deliver(self, batch: list[_Final]) -> None:
        if not self._batch or len(batch) == 1:
            for f in batch:
                self._report(f.task, f.status, f.error, f.outcome)
            return
        delay = 0.05
        reports = [
            StatusReport.for_task(
                f.task,
                f.status,
                f.error,
                output=f.outcome.output if f.outcome else None,
                branch=f.outcome.branch if f.outcome else None,
            )
            for f in batch
        ]
        while True:
            try:
                errors = self.client.report_many(reports)
                self._on_reachable()
                break
            except NotFoundError:
                self._batch = False
                self._deliver(batch)
                return
            except Exception as exc:
                if self._abandon.is_set():
                    log.error("giving up reporting %d statuses: %s", len(batch), exc)
                    return
                if not self._unreachable:
                    self._unreachable = True
                    log.warning("cannot report %d statuses (%s); retrying", len(batch), exc)
                self._abandon.wait(delay)
                delay = min(5.0, delay * 2)
        for f, error in zip(batch, errors, strict=True):
            if error is not None:
                log.warning(
                    "scheduler refused %s for %s: %s",
                    f.status,
                    _describe(f.task),
                    error,
                    extra=_ids(f.task),
                )

    # ------------------------------------------------------------------ running a task

    def _submit(self, task: TaskToExec) -> None:
        """Hand ``task`` to a worker thread (the poll loop's slots bound how many run)."""
        self._work.put(task)
        if len(self._workers) < self.concurrency:
            worker = threading.Thread(
                target=self._work_loop,
                name=f"ppacer-task-{self.name}-{len(self._workers)}",
                daemon=True,
            )
            worker.start()
            self._workers.append(worker)

    def _work_loop(self) -> None:
        """A worker thread: run attempts until told to stop (None)."""
        while (task := self._work.get()) is not None:
            self._run_task(task)

    def _run_task(self, task: TaskToExec) -> None:
        try:
            self._execute(task)
        except Exception:
            log.exception("executor error while running %s", _describe(task), extra=_ids(task))
        finally:
            self._end()

    def _execute(self, task: TaskToExec) -> None:
        dag = self.registry.get(task.dag_id)
        info = dag.tasks.get(task.task_id) if dag is not None else None
        if info is None:
            what = f"DAG {task.dag_id!r}" if dag is None else f"task {task.task_id!r}"
            self._report(
                task, TaskStatus.FAILED, f"LookupError: this executor's registry has no {what}"
            )
            return
        # A scheduler that marks attempts RUNNING as it hands them out saves a round trip.
        if task.status != TaskStatus.RUNNING and not self._report(task, TaskStatus.RUNNING):
            return
        if task.lease_timeout_s:
            self._heartbeat_s = max(0.05, task.lease_timeout_s / 3)
        heartbeat_s = self._heartbeat_s
        if dag is not None and dag.attributes.run_timeout_s is not None:
            heartbeat_s = min(heartbeat_s, RUN_DEADLINE_HEARTBEAT_S)
        key = (task.dag_id, task.exec_ts, task.task_id, task.retry)
        attempt = _Attempt(task, info.config, monotonic() + info.config.timeout_s, heartbeat_s)
        self._attempts[key] = attempt
        # The supervisor recomputes its next heartbeat: this lease may need one sooner.
        self._wake_supervisor()
        logger = task_logger(
            self.task_log, task.dag_id, task.exec_ts, task.task_id, task.retry, task.run_id
        )
        fields: dict[str, Any] = {
            "dag_id": task.dag_id,
            "exec_ts": parse_ts(task.exec_ts),
            "task_id": task.task_id,
            "retry": task.retry,
            "run_id": task.run_id,
            "params": task.params,
            "upstream": task.upstream,
        }
        log.info("Start executing task %s", _describe(task), extra=_ids(task))
        started = monotonic()
        try:
            if info.config.runs_in_process(info.task):
                outcome = run_in_child(
                    info.task,
                    fields,
                    logger,
                    attempt.deadline,
                    lambda: attempt.stop_reason,
                    lambda pid: setattr(attempt, "pid", pid),
                )
            else:
                outcome = self._run_here(attempt, info.task, TaskContext(logger=logger, **fields))
        finally:
            self._attempts.pop(key, None)
            self._wake_supervisor()
        if outcome.error is not None and not outcome.logged:
            logger.error("task failed: %s", outcome.error)
        if not attempt.claim():
            log.warning(
                "dropping the late result of %s: it timed out or its lease was lost",
                _describe(task),
                extra=_ids(task),
            )
            return
        log.info(
            "Finished executing task %s duration=%.1fms",
            _describe(task),
            (monotonic() - started) * 1000,
            extra=_ids(task),
        )
        if outcome.error is not None:
            self._report_final(task, TaskStatus.FAILED, outcome.error)
        else:
            self._report_final(task, TaskStatus.SUCCESS, outcome=outcome)

    def _run_here(self, attempt: _Attempt, task: Any, ctx: TaskContext) -> Outcome:
        """Run in this worker thread; coroutines on the executor's event loop."""
        try:
            result: Any = task.execute(ctx)
            if inspect.iscoroutine(result):
                future = asyncio.run_coroutine_threadsafe(result, self._event_loop())
                attempt.future = future
                try:
                    result = future.result(max(0.0, attempt.deadline - monotonic()))
                except (TimeoutError, concurrent.futures.CancelledError):
                    future.cancel()
                    if attempt.stop_reason is not None:
                        return Outcome(error=attempt.stop_reason)
                    return Outcome(
                        error=f"TimeoutError: the task ran past its timeout of "
                        f"{attempt.config.timeout_s:g} s and was cancelled"
                    )
            return outcome_of(result)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            ctx.logger.error("task failed: %s: %s", type(exc).__name__, exc, exc_info=True)
            return Outcome(error=f"{type(exc).__name__}: {exc}", logged=True)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        """The loop async tasks run on (started on first use)."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._loop_thread = threading.Thread(
                    target=loop.run_forever, name=f"ppacer-async-{self.name}", daemon=True
                )
                self._loop_thread.start()
                self._loop = loop
            return self._loop

    # ------------------------------------------------------------------ supervision

    def _supervise(self) -> None:
        """Heartbeat leases and enforce timeouts, waking only when one of them is due."""
        last_beat = -math.inf
        while not self._supervision_over():
            with self._supervisor_wake:
                self._supervisor_dirty = False
            attempts = list(self._attempts.values())  # worker threads add and remove
            # Counted from the last beat each time round: an attempt with a shorter
            # lease (or a run deadline) than any before moves the next beat earlier.
            interval = min([self._heartbeat_s, *(a.heartbeat_s for a in attempts if not a.done)])
            next_beat = last_beat + interval
            if monotonic() >= next_beat:
                self._heartbeat()
                last_beat = monotonic()
                next_beat = last_beat + interval
            for attempt in attempts:
                if not attempt.done and monotonic() >= attempt.deadline:
                    self._timed_out(attempt)
            deadlines = [a.deadline for a in attempts if not a.done]
            wake = min([*deadlines, next_beat])
            with self._supervisor_wake:
                # stop() and new attempts notify under this lock; one that came while
                # this pass ran (a heartbeat in flight) makes it go round again at once.
                if not self._supervision_over() and not self._supervisor_dirty:
                    self._supervisor_wake.wait(max(0.0, wake - monotonic()))

    def _wake_supervisor(self) -> None:
        with self._supervisor_wake:
            self._supervisor_dirty = True
            self._supervisor_wake.notify_all()

    def _supervision_over(self) -> bool:
        # Attempts still running are watched until they end, unless the stop deadline passed.
        return self._stop.is_set() and (not self._attempts or self._abandon.is_set())

    def _heartbeat(self) -> None:
        now = monotonic()
        tokens = {
            a.task.lease_token: a
            for a in list(self._attempts.values())
            if a.task.lease_token is not None and not a.done and now < a.deadline
        }
        try:
            lost = self.client.heartbeat(
                self.name, list(tokens), running=self._running, capacity=self.concurrency
            )
        except SchedulerUnavailableError as exc:
            log.debug("heartbeat failed: %s", exc)  # the poll loop says it is unreachable
            return
        except Exception as exc:
            # Leases run out if this goes on: say so (once until a heartbeat goes through).
            if not self._heartbeat_failing:
                log.warning("heartbeat to %s failed: %r", self.client.url, exc)
            self._heartbeat_failing = True
            return
        if self._heartbeat_failing:
            log.warning("heartbeats to %s go through again", self.client.url)
        self._heartbeat_failing = False
        for token in lost:
            attempt = tokens.get(token)
            if attempt is not None and attempt.claim():
                log.warning(
                    "lease lost on %s (the scheduler failed it); stopping it",
                    _describe(attempt.task),
                    extra=_ids(attempt.task),
                )
                attempt.stop_reason = "executor lost its lease"
                if attempt.future is not None:
                    attempt.future.cancel()

    def _timed_out(self, attempt: _Attempt) -> None:
        if attempt.pid is not None or attempt.future is not None:
            return  # a child process or a coroutine: stopped and reported by its runner
        if not attempt.claim():
            return
        error = (
            f"TimeoutError: task {attempt.task.task_id!r} ran past its timeout of "
            f"{attempt.config.timeout_s:g} s (it keeps its worker thread until it returns; "
            f"use isolation='process' to have it killed)"
        )
        log.warning("%s: %s", _describe(attempt.task), error, extra=_ids(attempt.task))
        self._report_final(attempt.task, TaskStatus.FAILED, error)


def _ids(task: TaskToExec) -> dict[str, object]:
    """The attempt's identity on a log record (JSON logs show it as dag_id, run_id ...)."""
    return {
        "ppacer_dag_id": task.dag_id,
        "ppacer_exec_ts": task.exec_ts,
        "ppacer_task_id": task.task_id,
        "ppacer_retry": task.retry,
        "ppacer_run_id": task.run_id,
    }


def _describe(task: TaskToExec) -> str:
    return f"{{DagId:{task.dag_id} ExecTs:{task.exec_ts} TaskId:{task.task_id} Retry:{task.retry}}}"
