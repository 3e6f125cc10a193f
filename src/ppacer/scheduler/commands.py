"""What the API, the web UI and the runner ask of the scheduler, and views of its memory.

:class:`SchedulerCommands` holds the operations on runs and DAGs (trigger,
pause, restart, clear, mark, backfill), the executors' side (pop, register,
heartbeat, reports, shipped logs) and cheap views of the scheduler's memory
(stats, why attempts wait). :class:`~ppacer.scheduler.core.SchedulerCore`,
which owns the parts these work on and their life cycle, is one. A standby
scheduler has no parts: its operations raise
:class:`~ppacer.scheduler.leadership.StandbyError` (503, naming the leader).

Everything here runs on the scheduler's event loop unless said otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from ppacer.api.checked import Registration
from ppacer.api.models import LogRecord, StatusReport, TaskToExec
from ppacer.dag.dag import Registry
from ppacer.dag.schedule import NEVER
from ppacer.dag.status import DagRunStatus, ScheduleEvent, SchedulerState, TaskStatus
from ppacer.db import controls as controls_db
from ppacer.db import dagruns as runs_db
from ppacer.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PpacerError,
    SchedulerUnavailableError,
)
from ppacer.scheduler import executors
from ppacer.scheduler.backfill import Backfiller
from ppacer.scheduler.config import Config
from ppacer.scheduler.dagrun_watcher import DagRunWatcher, NewDagRun
from ppacer.scheduler.dbgate import DatabaseGate, DatabaseUnavailableError, is_unavailable
from ppacer.scheduler.executors import LogDrops, LogsStored, Registered
from ppacer.scheduler.leadership import Leadership, StandbyError
from ppacer.scheduler.leases import ExecutorInfo
from ppacer.scheduler.task_scheduler import TaskEvent, TaskScheduler
from ppacer.timeutils import Clock, format_ts

__all__ = ["SchedulerCommands", "SchedulerStats"]

log = logging.getLogger("ppacer.scheduler")


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    """Queue lengths and counts of the scheduler's memory, for the UI and metrics."""

    # Attempts ready, waiting for an executor.
    ready: int = 0
    # Runs being scheduled now.
    active_runs: int = 0
    # Runs waiting for a slot under their DAG's max_active_runs.
    queued_runs: int = 0
    # Executors' long polls waiting for work.
    waiters: int = 0
    # Attempts leased to executors.
    leases: int = 0
    # New runs queued for the task scheduler, and that queue's bound.
    dag_run_queue: int = 0
    dag_run_queue_max: int = 0


class SchedulerCommands:
    """The scheduler's operations, on the parts :class:`SchedulerCore` builds."""

    config: Config
    engine: Engine
    logs_engine: Engine | None
    registry: Registry
    clock: Clock
    version: str
    gate: DatabaseGate
    log_drops: LogDrops
    leadership: Leadership | None
    task_scheduler: TaskScheduler | None
    watcher: DagRunWatcher | None
    backfiller: Backfiller | None
    _state: SchedulerState
    _queue: asyncio.Queue[NewDagRun] | None
    _observers: list[Callable[[TaskEvent], None]]
    # Executors' long polls waiting now (at most Config.max_long_polls).
    _long_polls: int = 0

    @property
    def is_standby(self) -> bool:
        """Whether another scheduler of the database leads and this one stands by."""
        return self._state is SchedulerState.STANDBY

    def leader_url(self) -> str | None:
        """A standby's leader's advertised URL (None: leading, or no live leader known)."""
        leader = self.leadership.leader if self.leadership is not None else None
        return leader.url if leader is not None and leader.is_held else None

    def _writing(self) -> contextlib.AbstractContextManager[Connection]:
        """A write transaction of an operation: unavailable database -> 503, gate closed."""
        self.gate.require_open()
        return _guarded_begin(self.engine, self.gate)

    def _parts(self) -> tuple[TaskScheduler, DagRunWatcher, Backfiller]:
        if self.task_scheduler is None or self.watcher is None or self.backfiller is None:
            if self.is_standby:
                raise StandbyError(
                    "this scheduler stands by; the leader "
                    f"({self.leader_url() or 'unknown now'}) takes changes: retry there"
                )
            raise PpacerError("scheduler not started")
        return self.task_scheduler, self.watcher, self.backfiller

    # ------------------------------------------------------------------ runs and DAGs

    async def trigger(
        self,
        dag_id: str,
        params: dict[str, Any] | None = None,
        exec_ts: datetime | None = None,
        actor: str = "api",
    ) -> NewDagRun:
        """Create a DAG run now, or for the logical time ``exec_ts``; returns it once queued.

        A second run of a DAG for the same logical time is a :class:`ConflictError`.
        """
        if dag_id not in self.registry:
            raise NotFoundError(f"dagId: unknown DAG {dag_id!r}")
        assert self._queue is not None
        now = format_ts(self.clock.now())
        logical = format_ts(exec_ts) if exec_ts is not None else now
        try:
            with self._writing() as conn:
                run_id = runs_db.insert_dag_run(
                    conn, dag_id, logical, now, self.version, DagRunStatus.READY_TO_SCHEDULE, params
                )
                # NextScheduleTs holds the run's ExecTs, as the original writes it (NOT NULL
                # in its schema), so its queries read our rows as they read its own.
                runs_db.insert_schedule(
                    conn, dag_id, ScheduleEvent.MANUALLY_TRIGGERED, logical, logical, now
                )
                controls_db.insert_run_event(
                    conn, run_id, "TRIGGER", now, actor, detail={"params": params or {}}
                )
        except IntegrityError:
            raise ConflictError(f"DAG {dag_id!r} already has a run at {logical}") from None
        run = NewDagRun(run_id, dag_id, logical)
        log.info("DAG run triggered dagId=%s execTs=%s runId=%d", dag_id, logical, run_id)
        await self._queue.put(run)
        return run

    def set_paused(self, dag_id: str, paused: bool, actor: str = "api") -> None:
        """Pause (no new scheduled runs) or unpause a DAG; persisted."""
        if dag_id not in self.registry:
            raise NotFoundError(f"dagId: unknown DAG {dag_id!r}")
        watcher = self._parts()[1]
        pending = watcher.pending_point(dag_id)
        with self._writing() as conn:
            controls_db.set_dag_paused(
                conn,
                dag_id,
                paused,
                format_ts(self.clock.now()),
                actor,
                format_ts(pending) if pending is not None else None,
            )
        if paused:
            watcher.pause(dag_id)
        else:
            watcher.unpause(dag_id)
        log.info("DAG %s %s by %s", dag_id, "paused" if paused else "unpaused", actor)

    def next_run(self, dag_id: str) -> datetime | None:
        """The DAG's next scheduled point (None: unscheduled, paused or past its end)."""
        return self.watcher.pending_point(dag_id) if self.watcher is not None else None

    def schedule_preview(
        self, dag_id: str, n: int, after: datetime | None = None
    ) -> list[dict[str, str]]:
        """The next ``n`` schedule points of a DAG after ``after`` (default: now), UTC and local."""
        dag = self.registry.get(dag_id)
        if dag is None:
            raise NotFoundError(f"dagId: unknown DAG {dag_id!r}")
        if dag.schedule is None:
            return []
        zone = ZoneInfo(getattr(dag.schedule, "tz", None) or self.config.timezone)
        point = self.clock.now() if after is None else after
        out = []
        for _ in range(n):
            point = dag.schedule.next(point, None)
            if point == NEVER:
                break
            out.append({"utc": format_ts(point), "local": point.astimezone(zone).isoformat()})
        return out

    def restart_run(self, dag_id: str, exec_ts: datetime, actor: str = "api") -> int:
        """Restart a FAILED run; return the restart's number."""
        return self._parts()[0].restart_run(dag_id, exec_ts, actor)

    def clear_task(
        self, dag_id: str, exec_ts: datetime, task_id: str, actor: str = "api"
    ) -> list[str]:
        """Run a task and its downstream again in a finished run; return their ids."""
        return self._parts()[0].clear_task(dag_id, exec_ts, task_id, actor)

    def mark_task(
        self, dag_id: str, exec_ts: datetime, task_id: str, status: TaskStatus, actor: str = "api"
    ) -> None:
        """Set a task's latest attempt to SUCCESS or FAILED by hand."""
        self._parts()[0].mark_task(dag_id, exec_ts, task_id, status, actor)

    def create_backfill(
        self, dag_id: str, start: datetime, end: datetime, max_active_runs: int, actor: str
    ) -> tuple[controls_db.BackfillRow, int]:
        """Create the runs of ``dag_id``'s schedule points in ``[start, end]``, in order.

        Returns the backfill and how many of those points have a run already (skipped).
        """
        self.gate.require_open()
        return self._parts()[2].create(dag_id, start, end, max_active_runs, actor)

    def is_active(self, dag_id: str, exec_ts: str) -> bool:
        """Whether the run is being scheduled now."""
        return self.task_scheduler is not None and self.task_scheduler.is_active(dag_id, exec_ts)

    # ------------------------------------------------------------------ executors

    @contextlib.contextmanager
    def holding_dispatch(self) -> Iterator[None]:
        """Attempts made ready within the block wait in the queue, and go to the long polls
        waiting only at its end: a report's sender takes its share first (one round trip
        a hop, ``POST /dag/task/update/pop``)."""
        tasks = self.task_scheduler
        if tasks is None:
            yield
            return
        with tasks.dispatch.holding():
            yield

    async def pop_tasks(
        self,
        wait_s: float,
        executor: str | None,
        max_n: int,
        gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> list[TaskToExec]:
        """Up to ``max_n`` ready attempts, leased and RUNNING, waiting up to ``wait_s`` for one.

        ``gone`` tells whether the poller hung up while it waited: then the
        attempts go back to the front of the queue for the next poll.

        At most ``Config.max_long_polls`` long polls (``wait_s > 0``) wait at once;
        one more is refused at once with
        :class:`~ppacer.errors.SchedulerUnavailableError` (503), which executors
        take as "unavailable" and poll again later with back-off.
        """
        if not 0 <= wait_s <= self.config.max_pop_wait_s:
            raise InvalidInputError(f"wait_s: must be between 0 and {self.config.max_pop_wait_s}")
        if self._state is not SchedulerState.RUNNING:
            if self.is_standby:
                self._parts()  # raises StandbyError: the executor goes to the leader
            return []
        tasks = self._parts()[0]
        polls = self._long_polls
        if wait_s > 0:
            limit = self.config.max_long_polls
            if polls >= limit:
                raise SchedulerUnavailableError(
                    f"too many long polls: {polls} wait already (max_long_polls is {limit}); "
                    "poll again later"
                )
            self._long_polls = polls + 1
        try:
            items = await tasks.pop_many(wait_s, executor, max_n)
        finally:
            if wait_s > 0:
                self._long_polls -= 1
        leads = self.leadership is None or self.leadership.is_valid()
        if items and (not leads or (wait_s > 0 and gone is not None and await gone())):
            for item in reversed(items):
                tasks.dispatch.requeue_front(item)
            return []
        return [tasks.dispatch.start_attempt(item, executor) for item in items]

    def register_executor(self, registration: Registration) -> Registered:
        """Record what an executor serves and has; say what of the registry it lacks."""
        return executors.register(self._parts()[0], self.registry, registration, self.version)

    def heartbeat(
        self, executor: str, tokens: Sequence[str], running: int, capacity: int | None
    ) -> list[str]:
        """Renew ``executor``'s leases; return the tokens it no longer holds."""
        return self._parts()[0].heartbeat(executor, tokens, running, capacity)

    def apply_report(self, report: StatusReport) -> None:
        """Apply one executor report; its error is raised."""
        self._parts()[0].apply_report(report)

    def apply_reports(self, reports: Sequence[StatusReport]) -> list[PpacerError | None]:
        """Apply reports in order in one transaction; per report, None or its error."""
        return self._parts()[0].update_statuses(reports)

    def store_task_logs(self, records: Sequence[LogRecord]) -> LogsStored:
        """Store log records shipped by an executor; each once, by attempt and ``seq``.

        Blocking: call it off the event loop.
        """
        return executors.store_logs(
            self.engine,
            self.logs_engine,
            self.registry,
            records,
            self.log_drops,
            max_message_chars=self.config.max_log_message_chars,
        )

    def waiting_reasons(
        self, dag_id: str | None = None, exec_ts: str | None = None
    ) -> dict[tuple[str, int], str]:
        """Why queued attempts (of one run, if given) wait: no connected executor may take them.

        By ``(task_id, retry)``; attempts some connected executor may take are not listed.
        """
        tasks = self.task_scheduler
        if tasks is None:
            return {}
        return {
            (item.task_id, item.retry): reason
            for item, reason in tasks.router.waiting(self.config.lease_timeout_s)
            if dag_id is None or (item.dag_id == dag_id and item.exec_ts == exec_ts)
        }

    def waiting_by_queue(self) -> dict[str, int]:
        """How many queued attempts no connected executor may take, by queue."""
        tasks = self.task_scheduler
        out: dict[str, int] = {}
        if tasks is not None:
            for item, _ in tasks.router.waiting(self.config.lease_timeout_s):
                queue = tasks.router.requirement(item).queue
                out[queue] = out.get(queue, 0) + 1
        return out

    def executors(self) -> list[ExecutorInfo]:
        """Executors heard from, most recently seen first."""
        return self.task_scheduler.executors_view() if self.task_scheduler is not None else []

    def add_task_observer(self, observer: Callable[[TaskEvent], None]) -> None:
        """Call ``observer`` (after the commit) with every task status change."""
        self._observers.append(observer)
        if self.task_scheduler is not None:
            self.task_scheduler.observers.append(observer)

    def stats(self) -> SchedulerStats:
        """Queue lengths and counts, read from memory (cheap: no database)."""
        tasks = self.task_scheduler
        queue = self._queue
        if tasks is None:
            return SchedulerStats()
        counts = tasks.stats()
        return SchedulerStats(
            ready=counts["ready"],
            active_runs=counts["active_runs"],
            queued_runs=counts["queued_runs"],
            waiters=counts["waiters"],
            leases=tasks.lease_count(),
            dag_run_queue=queue.qsize() if queue is not None else 0,
            dag_run_queue_max=queue.maxsize if queue is not None else 0,
        )


@contextlib.contextmanager
def _guarded_begin(engine: Engine, gate: DatabaseGate) -> Iterator[Connection]:
    try:
        with engine.begin() as conn:
            yield conn
    except Exception as exc:
        if is_unavailable(exc):
            gate.failed(exc)
            raise DatabaseUnavailableError(str(exc)) from exc
        raise
