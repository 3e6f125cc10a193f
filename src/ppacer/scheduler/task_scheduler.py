"""The task scheduler: decides which task attempts are ready, and takes status reports.

Everything here runs on the scheduler's event loop, so the in-memory state
needs no locks. Readiness is event-driven: when a task finishes, only its
children are looked at (a counter of parents still to finish per task, and
the child's trigger rule); nothing polls. Every change is written to the
database in one transaction before it becomes visible (queued or answered),
so a restart rebuilds exactly this state from the database.

A run ends FAILED when a task failed for good (unless a ``one_failed`` child
of it - an error handler - succeeded) or a task could not run because of an
upstream failure; SKIPPED tasks (branches not followed) do not fail a run.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import logging
import socket
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from ppacer.api.models import StatusReport, TaskToExec
from ppacer.dag.dag import Dag, Registry
from ppacer.dag.status import DagRunStatus, TaskStatus, TriggerRule, check_task_transition
from ppacer.dag.task import MAX_OUTPUT_BYTES
from ppacer.db import controls as controls_db
from ppacer.db import dagruns as runs_db
from ppacer.db import dagruntasks as tasks_db
from ppacer.errors import ConflictError, InvalidInputError, NotFoundError, PpacerError
from ppacer.notify import Message, Notifier, send_safely
from ppacer.scheduler.leases import ExecutorInfo, Lease, LeaseTable
from ppacer.timeutils import Clock, format_ts, parse_ts

__all__ = ["RunState", "TaskEvent", "TaskScheduler"]

# Longest a handed-out attempt's RUNNING row waits to be written (batched with others).
_RUNNING_FLUSH_S = 0.02
# Statuses with which a task counts as finished for its children's trigger rules.
_SETTLED = (TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.UPSTREAM_FAILED, TaskStatus.SKIPPED)
# Rules that cannot fire while a parent is unfinished, whatever a successful parent says.
_WAIT_ON_SUCCESS = (
    TriggerRule.ALL_SUCCESS,
    TriggerRule.ALL_DONE,
    TriggerRule.NONE_FAILED,
    TriggerRule.ONE_FAILED,
)

log = logging.getLogger("ppacer.scheduler")

_REPORTABLE = (TaskStatus.RUNNING, TaskStatus.SUCCESS, TaskStatus.FAILED)


@dataclass(slots=True)
class RunState:
    """In-memory state of one active DAG run."""

    run_id: int
    dag: Dag
    exec_ts: str
    status: DagRunStatus
    params: dict[str, Any]
    restarts: int = 0
    # Latest attempt of each task that has one in the current epoch: (retry, status).
    latest: dict[str, tuple[int, TaskStatus]] = field(default_factory=dict)
    # Retry number the next attempt of a task without a current attempt gets.
    next_retry: dict[str, int] = field(default_factory=dict)
    # For tasks not yet scheduled or settled: how many parents have not finished yet.
    waiting: dict[str, int] = field(default_factory=dict)
    # Tasks whose latest attempt is not terminal (or that have none yet).
    unfinished: int = 0
    retry_timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    # Values returned by succeeded tasks (JSON-decoded), by task id.
    outputs: dict[str, Any] = field(default_factory=dict)
    # When the run was created (stored form), for the DAG's run timeout.
    insert_ts: str = ""
    deadline_timer: asyncio.TimerHandle | None = None
    # Lease tokens of attempts already reported final, so a repeated report is a no-op.
    closed_leases: dict[tuple[str, int], str] = field(default_factory=dict)

    def cancel_timers(self) -> None:
        """Stop the run's retry and deadline timers."""
        for timer in self.retry_timers.values():
            timer.cancel()
        self.retry_timers.clear()
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()
            self.deadline_timer = None

    def retry_allowed(self, task_id: str, retry: int) -> bool:
        """Whether a failed attempt ``retry`` may be tried again.

        Each restart of the run grants the task its full retry budget again.
        """
        retries = self.dag.tasks[task_id].config.retries
        return retry < (retries + 1) * (self.restarts + 1) - 1


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """A task attempt's status changed (told to :attr:`TaskScheduler.observers`)."""

    dag_id: str
    exec_ts: str
    task_id: str
    retry: int
    status: TaskStatus
    # When the change was recorded (UTC).
    at: datetime


class TaskScheduler:
    """Schedules the tasks of active DAG runs and applies executors' status reports."""

    def __init__(
        self,
        engine: Engine,
        registry: Registry,
        clock: Clock,
        version: str,
        notifier: Notifier | None,
        *,
        lease_timeout_s: float = 30.0,
        timeout_grace_s: float = 10.0,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.clock = clock
        self.version = version
        self.notifier = notifier
        self.lease_timeout_s = lease_timeout_s
        self.timeout_grace_s = timeout_grace_s
        self.active: dict[tuple[str, str], RunState] = {}
        # Ready attempts: a heap of (-priority, sequence, attempt); first in, first out
        # within a priority.
        self.ready: list[tuple[int, int, TaskToExec]] = []
        self._seq = itertools.count()
        self._front = itertools.count(-1, -1)
        self.leases = LeaseTable()
        self._lease_timer: asyncio.TimerHandle | None = None
        #: Executors heard from (pops and heartbeats), by name.
        self.executors: dict[str, ExecutorInfo] = {}
        # Attempts handed out (RUNNING in memory) whose RUNNING row is not written yet:
        # written by the next transaction, at the latest _RUNNING_FLUSH_S after the pop.
        self._running_pending: dict[tuple[str, str, str, int], tuple[RunState, str]] = {}
        self._flush_timer: asyncio.TimerHandle | None = None
        self._waiters: deque[asyncio.Future[TaskToExec | None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Retries whose delay started before the loop existed: (due, run key, task id, retry).
        self._pending_timers: list[tuple[datetime, tuple[str, str], str, int]] = []
        # Runs waiting for a slot under their DAG's max_active_runs, by DAG, in order.
        self._queued_runs: dict[str, deque[int]] = {}
        # Active runs by DAG (kept with ``active``: counting it per new run was quadratic).
        self._active_count: Counter[str] = Counter()
        # Runs being submitted that were created just now (no attempts, outputs or
        # restarts to read back): RunId -> their parameters.
        self._new_runs: dict[int, dict[str, Any]] = {}
        # Attempts to queue once the current transaction commits.
        self._outbox: list[tuple[RunState, str, int]] = []
        # Status changes to tell observers once the current transaction commits.
        self._events: list[TaskEvent] = []
        #: Called after a run finishes (the watcher uses it to learn about free slots).
        self.on_run_finished: Callable[[RunState], None] | None = None
        #: Called (after the commit) with every task status change; metrics and the UI
        #: subscribe here. An observer that raises is logged and ignored.
        self.observers: list[Callable[[TaskEvent], None]] = []

    # ------------------------------------------------------------------ loading runs

    def now_ts(self) -> str:
        """The current time in stored form."""
        return format_ts(self.clock.now())

    def load_run(
        self,
        conn: Connection,
        row: runs_db.DagRunRow,
        *,
        reset: Collection[str] = (),
        recover: bool = True,
    ) -> None:
        """Make a run active from its database rows and schedule whatever is ready.

        Used for new runs, for runs recovered after a restart of the scheduler
        (SUCCESS tasks are kept; SCHEDULED and RUNNING attempts are queued
        again; pending retries resume) and for restarted or cleared runs: the
        tasks in ``reset`` get a new attempt (the next retry number).
        With ``recover=False`` (reloading after a failed write while executors
        work on) SCHEDULED and RUNNING attempts are left as they are.
        """
        dag = self.registry.get(row.dag_id)
        if dag is None:
            log.warning("DAG run %s of unknown DAG %r left as it is", row.run_id, row.dag_id)
            return
        new_params = self._new_runs.pop(row.run_id, None)
        new = new_params is not None and not reset
        state = RunState(
            run_id=row.run_id,
            dag=dag,
            exec_ts=row.exec_ts,
            status=row.status,
            params=(
                new_params
                if new_params is not None
                else runs_db.read_dag_run_params(conn, row.run_id)
            ),
            restarts=0 if new else runs_db.count_restarts(conn, row.dag_id, row.exec_ts),
            insert_ts=row.insert_ts,
        )
        now = self.now_ts()
        attempts = [] if new else tasks_db.read_dag_run_tasks(conn, row.dag_id, row.exec_ts)
        for a in attempts:
            if a.task_id in dag.tasks:
                prev = state.latest.get(a.task_id)
                if prev is None or a.retry >= prev[0]:
                    state.latest[a.task_id] = (a.retry, a.status)
        requeue: list[tuple[str, int]] = []
        for task_id, (retry, status) in list(state.latest.items()):
            if task_id in reset:
                del state.latest[task_id]
                state.next_retry[task_id] = retry + 1
            elif status in (TaskStatus.SCHEDULED, TaskStatus.RUNNING) and recover:
                requeue.append((task_id, retry))
                if status is TaskStatus.RUNNING:
                    self._set(conn, state, task_id, retry, TaskStatus.SCHEDULED, now)
            elif status is TaskStatus.FAILED_PENDING_RETRY:
                delay = timedelta(seconds=dag.tasks[task_id].config.retry_delay_for(retry))
                failed_at = next(
                    parse_ts(a.status_update_ts)
                    for a in attempts
                    if a.task_id == task_id and a.retry == retry
                )
                self._pending_timers.append(
                    (failed_at + delay, (row.dag_id, row.exec_ts), task_id, retry + 1)
                )
        outputs = {} if new else tasks_db.read_task_outputs(conn, row.dag_id, row.exec_ts)
        for (task_id, retry), value in outputs.items():
            if state.latest.get(task_id) == (retry, TaskStatus.SUCCESS):
                state.outputs[task_id] = json.loads(value)
        # Tasks without an attempt, in graph order: run, settle (skip or upstream-failed,
        # e.g. downstream of a failure that never got its row) or wait for parents.
        ready: list[str] = []
        settled: list[tuple[str, int, TaskStatus]] = []
        for task_id, info in dag.tasks.items():
            if task_id in state.latest:
                continue
            decision = self._decide(state, task_id)
            if decision is None:
                state.waiting[task_id] = sum(
                    1 for p in info.parents if self._settled(state, p) is None
                )
            elif decision is TaskStatus.SCHEDULED:
                ready.append(task_id)
                state.waiting[task_id] = 0
            else:
                retry = state.next_retry.pop(task_id, 0)
                state.latest[task_id] = (retry, decision)
                settled.append((task_id, retry, decision))
        tasks_db.insert_dag_run_tasks(conn, dag.id, row.exec_ts, settled, now, self.version)
        state.unfinished = sum(
            1 for t in dag.tasks if t not in state.latest or not state.latest[t][1].is_terminal
        )
        if state.status is DagRunStatus.READY_TO_SCHEDULE or state.status.is_finished:
            state.status = DagRunStatus.SCHEDULED
            runs_db.update_dag_run_status(conn, row.run_id, DagRunStatus.SCHEDULED, now)
        if (row.dag_id, row.exec_ts) not in self.active:
            self._active_count[row.dag_id] += 1
        self.active[(row.dag_id, row.exec_ts)] = state
        self._schedule(conn, state, ready, now)
        self._outbox.extend((state, task_id, retry) for task_id, retry in requeue)
        if state.unfinished == 0:
            self._finish_run(conn, state, now)
        elif dag.attributes.run_timeout_s is not None:
            self._start_deadline_timer(state)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction; attempts scheduled in it are queued only after it commits.

        If it fails, the runs it touched are reloaded from the database, so
        memory never holds what the database does not.
        """
        try:
            with self.engine.begin() as conn:
                yield conn
                self._write_running(conn)
        except PpacerError:
            # Raised by checks before anything was written or changed in memory.
            self._outbox.clear()
            self._events.clear()
            raise
        except BaseException:
            self._outbox.clear()
            self._events.clear()
            self._reload_active()
            raise
        outbox, self._outbox = self._outbox, []
        for state, task_id, retry in outbox:
            self._push(state, task_id, retry)
        self._dispatch()
        events, self._events = self._events, []
        for event in events:
            for observer in self.observers:
                try:
                    observer(event)
                except Exception:
                    log.exception("task event observer %r failed", observer)

    def _record(self, state: RunState, task_id: str, retry: int, status: TaskStatus) -> None:
        if self.observers:
            self._events.append(
                TaskEvent(state.dag.id, state.exec_ts, task_id, retry, status, self.clock.now())
            )

    def _write_running(self, conn: Connection) -> None:
        """Write the RUNNING rows of attempts handed out since the last transaction."""
        if not self._running_pending:
            return
        pending, self._running_pending = self._running_pending, {}
        changes = []
        for (dag_id, exec_ts, task_id, retry), (state, at) in pending.items():
            if state.latest.get(task_id) != (retry, TaskStatus.RUNNING):
                continue  # finished within the window: its final row says it all
            changes.append((dag_id, exec_ts, task_id, retry, TaskStatus.RUNNING, at))
            self._run_started(conn, state, at)
        tasks_db.update_dag_run_task_statuses(conn, changes)

    def _run_started(self, conn: Connection, state: RunState, at: str) -> None:
        if state.status is DagRunStatus.SCHEDULED:
            state.status = DagRunStatus.RUNNING
            runs_db.update_dag_run_status(conn, state.run_id, DagRunStatus.RUNNING, at)

    def start_attempt(self, item: TaskToExec) -> TaskToExec:
        """The attempt was handed to an executor: it is RUNNING from now on.

        Saves the executor a RUNNING report (a repeated one is a no-op). The
        RUNNING row is written with the next transaction, at most
        ``_RUNNING_FLUSH_S`` later; a quick task's final report writes it at
        once. A crash before that leaves the row SCHEDULED, which recovery
        treats as it treats RUNNING: the attempt is queued again.
        """
        state = self.active.get((item.dag_id, item.exec_ts))
        if state is None or state.latest.get(item.task_id) != (item.retry, TaskStatus.SCHEDULED):
            return item  # not current any more, or RUNNING already
        now = self.now_ts()
        state.latest[item.task_id] = (item.retry, TaskStatus.RUNNING)
        self._record(state, item.task_id, item.retry, TaskStatus.RUNNING)
        self._running_pending[(item.dag_id, item.exec_ts, item.task_id, item.retry)] = (state, now)
        if self._flush_timer is None and self._loop is not None:
            self._flush_timer = self._loop.call_later(_RUNNING_FLUSH_S, self._flush_running)
        return replace(item, status=str(TaskStatus.RUNNING))

    def _flush_running(self) -> None:
        self._flush_timer = None
        if not self._running_pending:
            return
        try:
            with self.transaction():
                pass
        except Exception:
            log.exception("could not write RUNNING statuses")

    def _reload_active(self) -> None:
        """Rebuild all active runs from the database after a failed write."""
        for state in self.active.values():
            state.cancel_timers()
        self.active.clear()
        self._active_count.clear()
        self._queued_runs.clear()
        self._new_runs.clear()
        queued = [item for _, _, item in sorted(self.ready)]
        self.ready.clear()
        try:
            with self.engine.begin() as conn:
                for row in runs_db.read_unfinished_dag_runs(conn):
                    if row.status is DagRunStatus.READY_TO_SCHEDULE:
                        self.submit(conn, row)
                    else:
                        self.load_run(conn, row, recover=False)
        except Exception:
            log.exception("could not reload active DAG runs from the database")
        self._outbox.clear()
        for item in queued:
            run = self.active.get((item.dag_id, item.exec_ts))
            if run is not None and run.latest.get(item.task_id) == (
                item.retry,
                TaskStatus.SCHEDULED,
            ):
                self._push(run, item.task_id, item.retry)
        self._dispatch()
        if self._loop is not None:
            self.start_timers(self._loop)

    def start_timers(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the running loop and start the timers found while loading runs."""
        self._loop = loop
        for due, key, task_id, retry in self._pending_timers:
            state = self.active.get(key)
            if state is not None:
                self._start_retry_timer(state, task_id, retry, self.clock.seconds_until(due))
        self._pending_timers.clear()
        for state in self.active.values():
            if state.dag.attributes.run_timeout_s is not None and state.deadline_timer is None:
                self._start_deadline_timer(state)
        self._arm_lease_timer()

    # ------------------------------------------------------------------ queue and long polls

    def _hand_over(self, item: TaskToExec) -> bool:
        """Give ``item`` to the longest-waiting long poll, if there is one."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return True
        return False

    def _push(self, state: RunState, task_id: str, retry: int) -> None:
        info = state.dag.tasks[task_id]
        upstream = {
            p: state.outputs.get(p)
            for p in info.parents
            if state.latest.get(p, (0, None))[1] is TaskStatus.SUCCESS
        }
        item = TaskToExec(
            state.dag.id, state.exec_ts, task_id, retry, state.run_id, state.params, upstream
        )
        heapq.heappush(self.ready, (-info.config.priority, next(self._seq), item))

    def _dispatch(self) -> None:
        """Hand ready attempts to waiting long polls, highest priority first."""
        while self._waiters and self.ready:
            item = self._take_ready()
            if item is None:
                return
            if not self._hand_over(item):
                heapq.heappush(self.ready, (-(10**9), next(self._front), item))
                return

    def _is_current(self, item: TaskToExec) -> bool:
        state = self.active.get((item.dag_id, item.exec_ts))
        return state is not None and state.latest.get(item.task_id) == (
            item.retry,
            TaskStatus.SCHEDULED,
        )

    def _take_ready(self) -> TaskToExec | None:
        while self.ready:
            item = heapq.heappop(self.ready)[2]
            if self._is_current(item):  # a run that timed out or was marked leaves stale items
                return item
        return None

    async def pop(self, wait_s: float, executor: str | None = None) -> TaskToExec | None:
        """Return the next ready attempt, waiting up to ``wait_s`` seconds for one.

        The attempt comes with a lease for ``executor`` (see :mod:`ppacer.scheduler.leases`).
        """
        if executor is not None:
            self._seen(executor)
        item = self._take_ready()
        if item is None and wait_s > 0:
            waiter: asyncio.Future[TaskToExec | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                item = await asyncio.wait_for(waiter, wait_s)
            except TimeoutError:
                item = None
            finally:
                if not waiter.done():
                    waiter.cancel()
        if item is None:
            return None
        return self._lease(item, executor)

    async def pop_many(self, wait_s: float, executor: str | None, max_n: int) -> list[TaskToExec]:
        """Up to ``max_n`` ready attempts (waiting up to ``wait_s`` for the first), leased."""
        first = await self.pop(wait_s, executor)
        if first is None:
            return []
        items = [first]
        while len(items) < max_n:
            item = self._take_ready()
            if item is None:
                break
            items.append(self._lease(item, executor))
        return items

    def _lease(self, item: TaskToExec, executor: str | None) -> TaskToExec:
        state = self.active[(item.dag_id, item.exec_ts)]
        config = state.dag.tasks[item.task_id].config
        now = time.monotonic()
        # An executor that names itself heartbeats; an anonymous client (such as
        # the original ppacer's executor) is given until the task's timeout.
        ttl = self.lease_timeout_s
        if executor is None:
            ttl = max(ttl, config.timeout_s + self.timeout_grace_s)
        lease = self.leases.grant(
            (item.dag_id, item.exec_ts, item.task_id, item.retry),
            executor or "anonymous",
            now,
            ttl,
            now + config.timeout_s + self.timeout_grace_s,
        )
        if executor is not None:
            self.executors[executor].leases.add(lease.token)
        self._arm_lease_timer()
        return TaskToExec(
            item.dag_id,
            item.exec_ts,
            item.task_id,
            item.retry,
            item.run_id,
            item.params,
            item.upstream,
            lease.token,
            self.lease_timeout_s,
        )

    def requeue_front(self, item: TaskToExec) -> None:
        """Put back an attempt that could not be handed over; it is the next one out."""
        self._release((item.dag_id, item.exec_ts, item.task_id, item.retry))
        bare = TaskToExec(
            item.dag_id,
            item.exec_ts,
            item.task_id,
            item.retry,
            item.run_id,
            item.params,
            item.upstream,
        )
        if not self._hand_over(bare):
            heapq.heappush(self.ready, (-(10**9), next(self._front), bare))

    def release_waiters(self) -> None:
        """Answer every pending long poll with "nothing" (used when stopping)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------------ leases and executors

    def _seen(self, executor: str) -> ExecutorInfo:
        now = self.clock.now()
        info = self.executors.get(executor)
        if info is None:
            info = self.executors[executor] = ExecutorInfo(executor, now, now)
            log.info("executor %s connected", executor)
        info.last_seen = now
        return info

    def _release(self, attempt: tuple[str, str, str, int]) -> None:
        lease = self.leases.release(attempt)
        if lease is not None and lease.executor in self.executors:
            self.executors[lease.executor].leases.discard(lease.token)

    def heartbeat(
        self, executor: str, tokens: Iterable[str], running: int, capacity: int | None
    ) -> list[str]:
        """Renew ``executor``'s leases; return the tokens it no longer holds (expired, unknown).

        A lease is not renewed past its attempt's timeout (plus grace): liveness
        is about progress, not about the executor process being up.
        """
        info = self._seen(executor)
        info.running = running
        info.capacity = capacity
        now = time.monotonic()
        lost = []
        for token in tokens:
            lease = self.leases.by_token.get(token)
            if (
                lease is None
                or lease.executor != executor
                or not self.leases.renew(token, now, self.lease_timeout_s)
            ):
                lost.append(token)
        self._arm_lease_timer()
        return lost

    def _arm_lease_timer(self) -> None:
        if self._loop is None:
            return
        due = self.leases.next_expiry()
        if self._lease_timer is not None:
            if due is not None and abs(self._lease_timer.when() - due) < 1e-3:
                return
            self._lease_timer.cancel()
            self._lease_timer = None
        if due is not None:
            # The loop's clock is time.monotonic() (the default event loops').
            self._lease_timer = self._loop.call_at(max(due, self._loop.time()), self._expire)

    def _expire(self) -> None:
        self._lease_timer = None
        for lease in self.leases.pop_expired(time.monotonic()):
            if lease.executor in self.executors:
                self.executors[lease.executor].leases.discard(lease.token)
            self._lease_lost(lease)
        self._arm_lease_timer()

    def _lease_lost(self, lease: Lease) -> None:
        dag_id, exec_ts, task_id, retry = lease.attempt
        state = self.active.get((dag_id, exec_ts))
        if state is None or state.latest.get(task_id, (None, None))[0] != retry:
            return
        status = state.latest[task_id][1]
        if status not in (TaskStatus.SCHEDULED, TaskStatus.RUNNING):
            return
        now_mono = time.monotonic()
        if now_mono >= lease.deadline:
            timeout = state.dag.tasks[task_id].config.timeout_s
            reason = (
                f"TimeoutError: task {task_id!r} ran past its timeout of {timeout:g} s "
                f"(executor {lease.executor} did not report it in time)"
            )
        else:
            reason = (
                f"executor lost: executor {lease.executor} stopped renewing the lease on "
                f"{lease.describe} (no heartbeat for {self.lease_timeout_s:g} s)"
            )
        log.warning("%s", reason)
        try:
            with self.transaction() as conn:
                self._on_failure(conn, state, task_id, retry, reason, self.now_ts())
        except Exception:
            log.exception("could not fail the lost attempt %s", lease.describe)

    def executors_view(self, connected_within_s: float | None = None) -> list[ExecutorInfo]:
        """Executors heard from, most recent first (within ``connected_within_s``, if given)."""
        now = self.clock.now()
        out = sorted(self.executors.values(), key=lambda e: e.last_seen, reverse=True)
        if connected_within_s is not None:
            out = [e for e in out if (now - e.last_seen).total_seconds() <= connected_within_s]
        return out

    # ------------------------------------------------------------------ scheduling

    def _settled(self, state: RunState, task_id: str) -> TaskStatus | None:
        current = state.latest.get(task_id)
        return current[1] if current is not None and current[1] in _SETTLED else None

    def _decide(self, state: RunState, task_id: str) -> TaskStatus | None:
        info = state.dag.tasks[task_id]
        if not info.parents:
            return TaskStatus.SCHEDULED
        return info.trigger_rule.decide([self._settled(state, p) for p in info.parents])

    def _schedule(
        self, conn: Connection, state: RunState, task_ids: Iterable[str], now: str
    ) -> None:
        attempts = []
        for task_id in task_ids:
            retry = state.next_retry.pop(task_id, 0)
            state.waiting.pop(task_id, None)
            state.latest[task_id] = (retry, TaskStatus.SCHEDULED)
            attempts.append((task_id, retry, TaskStatus.SCHEDULED))
            self._record(state, task_id, retry, TaskStatus.SCHEDULED)
        tasks_db.insert_dag_run_tasks(
            conn, state.dag.id, state.exec_ts, attempts, now, self.version
        )
        self._outbox.extend((state, task_id, retry) for task_id, retry, _ in attempts)

    def _settle_children(
        self,
        conn: Connection,
        state: RunState,
        task_id: str,
        now: str,
        skip: Collection[str] = (),
    ) -> None:
        """``task_id`` has finished: decide what its children (and theirs, in turn) do.

        Children in ``skip`` (not followed by a branch) become SKIPPED.
        """
        ready: list[str] = []
        settled: list[tuple[str, int, TaskStatus]] = []
        stack = [(task_id, skip)]
        while stack:
            parent, skipped = stack.pop()
            parent_status = state.latest[parent][1]
            for child in state.dag.tasks[parent].children:
                if child not in state.waiting or child in ready:
                    continue
                state.waiting[child] -= 1
                rule = state.dag.tasks[child].trigger_rule
                if child in skipped:
                    decision: TaskStatus | None = TaskStatus.SKIPPED
                elif (
                    parent_status is TaskStatus.SUCCESS
                    and state.waiting[child] > 0
                    and rule in _WAIT_ON_SUCCESS
                ):
                    continue  # the common case, without looking at every parent
                else:
                    decision = self._decide(state, child)
                if decision is None:
                    continue
                if decision is TaskStatus.SCHEDULED:
                    ready.append(child)
                    continue
                del state.waiting[child]
                retry = state.next_retry.pop(child, 0)
                state.latest[child] = (retry, decision)
                state.unfinished -= 1
                settled.append((child, retry, decision))
                self._record(state, child, retry, decision)
                stack.append((child, ()))
        tasks_db.insert_dag_run_tasks(conn, state.dag.id, state.exec_ts, settled, now, self.version)
        self._schedule(conn, state, ready, now)

    def _run_failed(self, state: RunState) -> bool:
        for task_id, (_, status) in state.latest.items():
            if status is TaskStatus.UPSTREAM_FAILED:
                return True
            if status is TaskStatus.FAILED:
                handled = any(
                    state.dag.tasks[c].trigger_rule is TriggerRule.ONE_FAILED
                    and state.latest.get(c, (0, None))[1] is TaskStatus.SUCCESS
                    for c in state.dag.tasks[task_id].children
                )
                if not handled:
                    return True
        return False

    def _finish_run(self, conn: Connection, state: RunState, now: str) -> None:
        failed = self._run_failed(state)
        state.status = DagRunStatus.FAILED if failed else DagRunStatus.SUCCESS
        runs_db.update_dag_run_status(conn, state.run_id, state.status, now)
        self._deactivate(state.dag.id, state.exec_ts)
        state.cancel_timers()
        log.info(
            "DAG run finished dagId=%s execTs=%s status=%s",
            state.dag.id,
            state.exec_ts,
            state.status,
        )
        if failed:
            errors = tasks_db.read_task_errors(conn, state.dag.id, state.exec_ts)
            first = next(iter(errors.items()), None)
            self._notify(
                "dag_run_failed",
                state,
                first[0][0] if first else None,
                first[0][1] if first else None,
                first[1] if first else None,
            )
        self._start_queued(conn, state.dag.id)
        if self.on_run_finished is not None:
            self.on_run_finished(state)

    def _notify(
        self,
        kind: str,
        state: RunState,
        task_id: str | None = None,
        retry: int | None = None,
        error: str | None = None,
    ) -> None:
        send_safely(
            self.notifier,
            Message(
                kind,
                state.dag.id,
                state.exec_ts,
                task_id,
                retry,
                error,
                run_id=state.run_id,
                runtime={
                    "host": socket.gethostname(),
                    "schedulerVersion": self.version,
                    "at": self.now_ts(),
                },
            ),
        )

    def _start_retry_timer(self, state: RunState, task_id: str, retry: int, delay_s: float) -> None:
        if self._loop is None:
            due = self.clock.now() + timedelta(seconds=delay_s)
            self._pending_timers.append((due, (state.dag.id, state.exec_ts), task_id, retry))
            return
        # A millisecond of slack: loop timers may fire a hair early, and the stored
        # (wall-clock) timestamps must never show a retry before its delay.
        state.retry_timers[task_id] = self._loop.call_later(
            delay_s + 0.001 if delay_s > 0 else 0, self._retry_due, state, task_id, retry
        )

    def _retry_due(self, state: RunState, task_id: str, retry: int) -> None:
        state.retry_timers.pop(task_id, None)
        if self.active.get((state.dag.id, state.exec_ts)) is not state:
            return
        try:
            with self.transaction() as conn:
                now = self.now_ts()
                del state.latest[task_id]
                state.next_retry[task_id] = retry
                self._schedule(conn, state, [task_id], now)
        except Exception:
            # The run was reloaded from the database, which restarts the retry timer.
            log.exception("could not schedule retry %d of %s/%s", retry, state.dag.id, task_id)

    def _start_deadline_timer(self, state: RunState) -> None:
        timeout = state.dag.attributes.run_timeout_s
        if timeout is None or self._loop is None:
            return  # started by start_timers once the loop runs
        due = parse_ts(state.insert_ts) + timedelta(seconds=timeout)
        state.deadline_timer = self._loop.call_later(
            self.clock.seconds_until(due), self._deadline_due, state
        )

    def _deadline_due(self, state: RunState) -> None:
        state.deadline_timer = None
        if self.active.get((state.dag.id, state.exec_ts)) is not state:
            return
        timeout = state.dag.attributes.run_timeout_s
        if (
            self.clock.seconds_until(parse_ts(state.insert_ts) + timedelta(seconds=timeout or 0))
            > 0
        ):
            self._start_deadline_timer(state)  # a manual clock has not got there yet
            return
        reason = f"DAG run timed out: it ran longer than its run_timeout_s of {timeout:g} s"
        log.warning("DAG run %s of %s: %s", state.exec_ts, state.dag.id, reason)
        try:
            with self.transaction() as conn:
                self.fail_run(conn, state, reason)
        except Exception:
            log.exception("could not fail timed-out DAG run %s of %s", state.exec_ts, state.dag.id)

    def fail_run(self, conn: Connection, state: RunState, reason: str) -> None:
        """End an active run now: unfinished attempts FAILED with ``reason``, the rest
        UPSTREAM_FAILED, the run FAILED (and notified)."""
        now = self.now_ts()
        state.cancel_timers()
        not_started: list[tuple[str, int, TaskStatus]] = []
        for task_id in state.dag.tasks:
            current = state.latest.get(task_id)
            if current is None:
                retry = state.next_retry.pop(task_id, 0)
                state.latest[task_id] = (retry, TaskStatus.UPSTREAM_FAILED)
                not_started.append((task_id, retry, TaskStatus.UPSTREAM_FAILED))
            elif not current[1].is_terminal:
                retry = current[0]
                self._release((state.dag.id, state.exec_ts, task_id, retry))
                tasks_db.insert_task_error(
                    conn, state.dag.id, state.exec_ts, task_id, retry, reason, now
                )
                self._set(conn, state, task_id, retry, TaskStatus.FAILED, now)
        tasks_db.insert_dag_run_tasks(
            conn, state.dag.id, state.exec_ts, not_started, now, self.version
        )
        state.waiting.clear()
        state.unfinished = 0
        self._notify("dag_run_timeout", state, error=reason)
        self._finish_run(conn, state, now)

    # ------------------------------------------------------------------ status reports

    def update_status(
        self,
        dag_id: str,
        exec_ts: datetime,
        task_id: str,
        retry: int,
        status: TaskStatus,
        task_error: str | None,
        *,
        lease_token: str | None = None,
        output: Any = None,
        branch: list[str] | None = None,
    ) -> None:
        """Apply an executor's report of an attempt's status.

        A repeated report is a no-op; a report about an attempt that is not
        the current one, a change the status table does not allow, or a stale
        lease token raises :class:`ConflictError` naming the current state;
        unknown DAGs, runs and tasks raise :class:`NotFoundError`. A report
        without a token (the original protocol) is taken as it comes.
        """
        self.apply_report(
            StatusReport(
                dag_id,
                format_ts(exec_ts),
                task_id,
                retry,
                status,
                task_error,
                lease_token,
                output,
                branch,
            )
        )

    def apply_report(self, report: StatusReport) -> None:
        """Apply one report; its error is raised."""
        with self.transaction() as conn:
            self._apply_report(conn, report)

    def update_statuses(self, reports: Sequence[StatusReport]) -> list[PpacerError | None]:
        """Apply many reports in one transaction, in order; per report, the error or None."""
        results: list[PpacerError | None] = []
        with self.transaction() as conn:
            for report in reports:
                try:
                    self._apply_report(conn, report)
                except PpacerError as exc:  # raised before the report changed anything
                    results.append(exc)
                else:
                    results.append(None)
        return results

    def _apply_report(self, conn: Connection, report: StatusReport) -> None:
        dag_id, task_id, retry, status = report.dag_id, report.task_id, report.retry, report.status
        task_error = report.task_error
        lease_token = report.lease_token
        if status not in _REPORTABLE:
            raise InvalidInputError(
                f"status: {status} cannot be reported by an executor "
                f"(expected one of {', '.join(_REPORTABLE)})"
            )
        dag = self.registry.get(dag_id)
        if dag is None:
            raise NotFoundError(f"dagId: unknown DAG {dag_id!r}")
        if task_id not in dag.tasks:
            raise NotFoundError(f"taskId: DAG {dag_id!r} has no task {task_id!r}")
        ts = report.exec_ts
        state = self.active.get((dag_id, ts))
        if state is None:
            self._check_inactive_report(dag_id, ts, task_id, retry, status)
            return
        current = state.latest.get(task_id)
        if current is None or current[0] != retry:
            have = f"retry {current[0]} is {current[1]}" if current else "no attempt is scheduled"
            raise ConflictError(
                f"task {task_id!r} of DAG {dag_id!r} run {ts}: retry {retry} is not the current "
                f"attempt ({have})"
            )
        attempt = (dag_id, ts, task_id, retry)
        if lease_token is not None:
            lease = self.leases.for_attempt(attempt)
            closed = state.closed_leases.get((task_id, retry))
            if (lease is None or lease.token != lease_token) and closed != lease_token:
                held = f"held by executor {lease.executor}" if lease else "not leased"
                raise ConflictError(
                    f"task {task_id!r} of DAG {dag_id!r} run {ts} retry {retry}: the lease token "
                    f"is stale (the attempt is {current[1]}, {held})"
                )
        if current[1] == status:
            return  # a repeated report (a pending RUNNING row is written by this transaction)
        why = check_task_transition(current[1], status)
        if why is not None:
            raise ConflictError(f"task {task_id!r} of DAG {dag_id!r} run {ts} retry {retry}: {why}")
        output = report.output
        if status is TaskStatus.SUCCESS:
            problem = _check_result(dag, task_id, output, report.branch)
            if problem is not None:
                status, task_error = TaskStatus.FAILED, problem
        now = self.now_ts()
        log.info(
            "Updating dag run task status dagId=%s execTs=%s taskId=%s retry=%d "
            "currentStatus=%s newStatus=%s",
            dag_id,
            ts,
            task_id,
            retry,
            current[1],
            status,
        )
        self._run_started(conn, state, now)
        if status is TaskStatus.RUNNING:
            self._set(conn, state, task_id, retry, status, now)
            if lease_token is not None:
                self.leases.renew(lease_token, time.monotonic(), self.lease_timeout_s)
            return
        if lease_token is not None:
            state.closed_leases[(task_id, retry)] = lease_token
        self._release(attempt)
        if status is TaskStatus.SUCCESS:
            self._on_success(conn, state, task_id, retry, now, output, report.branch)
        else:
            self._on_failure(conn, state, task_id, retry, task_error, now)

    def _check_inactive_report(
        self, dag_id: str, ts: str, task_id: str, retry: int, status: TaskStatus
    ) -> None:
        with self.engine.connect() as conn:
            run = runs_db.read_dag_run_by_exec(conn, dag_id, ts)
            if run is None:
                raise NotFoundError(f"execTs: DAG {dag_id!r} has no run at {ts}")
            for a in tasks_db.read_dag_run_tasks(conn, dag_id, ts):
                if a.task_id == task_id and a.retry == retry and a.status == status:
                    return  # a repeated report of what is already recorded
        raise ConflictError(f"DAG {dag_id!r} run {ts} is {run.status}; it takes no status reports")

    def _set(
        self,
        conn: Connection,
        state: RunState,
        task_id: str,
        retry: int,
        status: TaskStatus,
        now: str,
    ) -> None:
        """Write an attempt's new status; every change the scheduler makes goes through here."""
        current = state.latest.get(task_id)
        why = (
            f"retry {retry} is not the current attempt ({current[0] if current else 'none'})"
            if current is None or current[0] != retry
            else check_task_transition(current[1], status, by="scheduler")
        )
        if why is not None:
            # A bug, never an executor's doing (reports are checked before): the
            # transaction is rolled back and the run reloaded from the database.
            raise ConflictError(
                f"task {task_id!r} of DAG {state.dag.id!r} run {state.exec_ts}: {why}"
            )
        tasks_db.update_dag_run_task_status(
            conn, state.dag.id, state.exec_ts, task_id, retry, status, now
        )
        state.latest[task_id] = (retry, status)
        self._record(state, task_id, retry, status)

    def _on_success(
        self,
        conn: Connection,
        state: RunState,
        task_id: str,
        retry: int,
        now: str,
        output: Any = None,
        branch: list[str] | None = None,
    ) -> None:
        self._set(conn, state, task_id, retry, TaskStatus.SUCCESS, now)
        if output is not None:
            tasks_db.insert_task_output(
                conn, state.dag.id, state.exec_ts, task_id, retry, json.dumps(output), now
            )
            state.outputs[task_id] = output
        state.unfinished -= 1
        skip: Collection[str] = ()
        if branch is not None:
            skip = set(state.dag.tasks[task_id].children) - set(branch)
        self._settle_children(conn, state, task_id, now, skip)
        if state.unfinished == 0:
            self._finish_run(conn, state, now)

    def _on_failure(
        self,
        conn: Connection,
        state: RunState,
        task_id: str,
        retry: int,
        error: str | None,
        now: str,
    ) -> None:
        config = state.dag.tasks[task_id].config
        if error:
            tasks_db.insert_task_error(
                conn, state.dag.id, state.exec_ts, task_id, retry, error, now
            )
        if state.retry_allowed(task_id, retry):
            self._set(conn, state, task_id, retry, TaskStatus.FAILED_PENDING_RETRY, now)
            self._start_retry_timer(state, task_id, retry + 1, config.retry_delay_for(retry))
            if config.send_alert_on_retry:
                self._notify("task_retry", state, task_id, retry, error)
            return
        self._set(conn, state, task_id, retry, TaskStatus.FAILED, now)
        state.unfinished -= 1
        if config.send_alert_on_failure:
            self._notify("task_failed", state, task_id, retry, error)
        self._settle_children(conn, state, task_id, now)
        if state.unfinished == 0:
            self._finish_run(conn, state, now)

    # ------------------------------------------------------------------ restart

    def submit(
        self,
        conn: Connection,
        row: runs_db.DagRunRow,
        *,
        new_params: dict[str, Any] | None = None,
    ) -> None:
        """Start a run now, or queue it (in order) behind its DAG's ``max_active_runs``.

        ``row`` was read in ``conn``'s transaction. ``new_params`` (the run's
        parameters) says the run was created just now and was never loaded:
        nothing of it needs reading back if it starts at once.
        """
        dag = self.registry.get(row.dag_id)
        if dag is None:
            log.warning("DAG run %s of unknown DAG %r left as it is", row.run_id, row.dag_id)
            return
        queued = self._queued_runs.setdefault(dag.id, deque())
        queued.append(row.run_id)
        if new_params is not None:
            self._new_runs[row.run_id] = new_params
        self._start_queued(conn, dag.id, row)
        # A run left waiting is read again (whatever happened to it meanwhile) when it starts.
        self._new_runs.pop(row.run_id, None)

    def _count_active(self, dag_id: str) -> int:
        return self._active_count[dag_id]

    def _deactivate(self, dag_id: str, exec_ts: str) -> RunState | None:
        state = self.active.pop((dag_id, exec_ts), None)
        if state is not None:
            self._active_count[dag_id] -= 1
        return state

    def _start_queued(
        self, conn: Connection, dag_id: str, just_read: runs_db.DagRunRow | None = None
    ) -> None:
        queued = self._queued_runs.get(dag_id)
        limit = self.registry[dag_id].attributes.max_active_runs
        while queued and self._count_active(dag_id) < limit:
            run_id = queued.popleft()
            if just_read is not None and just_read.run_id == run_id:
                row: runs_db.DagRunRow | None = just_read
            else:
                row = runs_db.read_dag_run(conn, run_id)
            if (
                row is not None
                and not row.status.is_finished
                and (row.dag_id, row.exec_ts) not in self.active
            ):
                self.load_run(conn, row)

    def queued_runs(self) -> int:
        """Runs waiting for a free slot under their DAG's ``max_active_runs``."""
        return sum(len(q) for q in self._queued_runs.values())

    def _find_run(
        self, conn: Connection, dag_id: str, ts: str, task_id: str | None = None
    ) -> runs_db.DagRunRow:
        """The run of ``dag_id`` at ``ts`` (and check ``task_id`` is one of its tasks)."""
        dag = self.registry.get(dag_id)
        if dag is None:
            raise NotFoundError(f"dagId: unknown DAG {dag_id!r}")
        if task_id is not None and task_id not in dag.tasks:
            raise NotFoundError(f"taskId: DAG {dag_id!r} has no task {task_id!r}")
        run = runs_db.read_dag_run_by_exec(conn, dag_id, ts)
        if run is None:
            raise NotFoundError(f"execTs: DAG {dag_id!r} has no run at {ts}")
        return run

    def restart_run(self, dag_id: str, exec_ts: datetime, actor: str = "api") -> int:
        """Restart a FAILED run (failed and upstream-failed tasks run again); return its number."""
        ts = format_ts(exec_ts)
        now = self.now_ts()
        with self.transaction() as conn:
            run = self._find_run(conn, dag_id, ts)
            if run.status is not DagRunStatus.FAILED or (dag_id, ts) in self.active:
                raise InvalidInputError(
                    f"DAG {dag_id!r} run {ts} is {run.status}; only a FAILED run can be restarted"
                )
            number = runs_db.insert_restart(conn, dag_id, ts, now)
            failed = {
                a.task_id
                for a in tasks_db.read_dag_run_tasks(conn, dag_id, ts)
                if a.status in (TaskStatus.FAILED, TaskStatus.UPSTREAM_FAILED)
            }
            controls_db.insert_run_event(
                conn, run.run_id, "RESTART", now, actor, detail={"restart": number}
            )
            self.load_run(conn, run, reset=failed)
        log.info("DAG run restarted dagId=%s execTs=%s restart=%d", dag_id, ts, number)
        return number

    def clear_task(
        self, dag_id: str, exec_ts: datetime, task_id: str, actor: str = "api"
    ) -> list[str]:
        """Run a task and everything downstream of it again in a finished run; return their ids."""
        ts = format_ts(exec_ts)
        now = self.now_ts()
        with self.transaction() as conn:
            run = self._find_run(conn, dag_id, ts, task_id)
            dag = self.registry[dag_id]
            if (dag_id, ts) in self.active:
                raise ConflictError(
                    f"DAG {dag_id!r} run {ts} is {run.status}; clear a task once the run finished"
                )
            cleared = [task_id, *dag.descendants(task_id)]
            controls_db.insert_run_event(
                conn, run.run_id, "CLEAR", now, actor, task_id, {"cleared": cleared}
            )
            self.load_run(conn, run, reset=set(cleared))
        log.info("task cleared dagId=%s execTs=%s taskId=%s", dag_id, ts, task_id)
        return cleared

    def mark_task(
        self, dag_id: str, exec_ts: datetime, task_id: str, status: TaskStatus, actor: str = "api"
    ) -> None:
        """Set a task's latest attempt to SUCCESS or FAILED by hand; the run goes on from there.

        Marked SUCCESS, its downstream tasks run (also those that had become
        UPSTREAM_FAILED); marked FAILED, it is not retried and its downstream
        becomes UPSTREAM_FAILED.
        """
        why = check_task_transition(None, status, by="hand")
        if why is not None:
            raise InvalidInputError(f"status: {why}")
        ts = format_ts(exec_ts)
        now = self.now_ts()
        with self.transaction() as conn:
            run = self._find_run(conn, dag_id, ts, task_id)
            dag = self.registry[dag_id]
            attempts = [
                a for a in tasks_db.read_dag_run_tasks(conn, dag_id, ts) if a.task_id == task_id
            ]
            latest = max(attempts, key=lambda a: a.retry) if attempts else None
            if latest is not None and latest.status == status:
                return
            state = self._deactivate(dag_id, ts)
            if state is not None:
                # Queued attempts of the run are dropped when popped (no longer current).
                state.cancel_timers()
                for attempt in list(self.leases.by_attempt):
                    if attempt[:3] == (dag_id, ts, task_id):
                        self._release(attempt)
            if latest is None:
                tasks_db.insert_dag_run_tasks(
                    conn, dag_id, ts, [(task_id, 0, status)], now, self.version
                )
            else:
                tasks_db.update_dag_run_task_status(
                    conn, dag_id, ts, task_id, latest.retry, status, now
                )
            rows = tasks_db.read_dag_run_tasks(conn, dag_id, ts)
            downstream = set(dag.descendants(task_id))
            reset = (
                {
                    a.task_id
                    for a in rows
                    if a.task_id in downstream and a.status is TaskStatus.UPSTREAM_FAILED
                }
                if status is TaskStatus.SUCCESS
                else set()
            )
            controls_db.insert_run_event(
                conn,
                run.run_id,
                f"MARK_{status}",
                now,
                actor,
                task_id,
                {"was": latest and latest.status},
            )
            fresh = runs_db.read_dag_run(conn, run.run_id)
            assert fresh is not None
            self.load_run(conn, fresh, reset=reset, recover=False)
        if self._loop is not None:
            self.start_timers(self._loop)
        log.info("task marked %s dagId=%s execTs=%s taskId=%s", status, dag_id, ts, task_id)

    def stats(self) -> dict[str, int]:
        """Queue lengths for the UI and metrics."""
        return {
            "ready": len(self.ready),
            "active_runs": len(self.active),
            "queued_runs": self.queued_runs(),
            "waiters": len(self._waiters),
        }


def _check_result(dag: Dag, task_id: str, output: Any, branch: list[str] | None) -> str | None:
    """What is wrong with a successful attempt's output or branch (None: nothing)."""
    if output is not None:
        try:
            size = len(json.dumps(output, allow_nan=False).encode())
        except (TypeError, ValueError) as exc:
            return f"OutputError: the value task {task_id!r} returned is not JSON: {exc}"
        if size > MAX_OUTPUT_BYTES:
            return (
                f"OutputError: the value task {task_id!r} returned is {size} bytes of JSON; "
                f"the limit is {MAX_OUTPUT_BYTES}"
            )
    if branch is not None:
        children = dag.tasks[task_id].children
        unknown = [b for b in branch if b not in children]
        if unknown:
            return (
                f"BranchError: task {task_id!r} chose {unknown}, which are not its children "
                f"(children: {list(children)})"
            )
    return None
