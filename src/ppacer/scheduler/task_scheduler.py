"""The task scheduler: hands ready task attempts to executors and applies their reports.

This module is the glue; each concern lives in its own module:

- :mod:`~ppacer.scheduler.runstate` - one run in memory and the pure readiness rules;
- :mod:`~ppacer.scheduler.active_runs` - loading runs, ``max_active_runs`` queueing;
- :mod:`~ppacer.scheduler.progress` - writing each change and what it sets off downstream;
- :mod:`~ppacer.scheduler.dispatch` - handing ready attempts to executors, leased;
- :mod:`~ppacer.scheduler.ready_queue` - ready attempts by priority, and waiting long polls;
- :mod:`~ppacer.scheduler.leases` - leases on handed-out attempts, executors, heartbeats;
- :mod:`~ppacer.scheduler.reports` - checks of executors' status reports;
- :mod:`~ppacer.scheduler.operations` - restart, clear and mark by an operator;
- :mod:`~ppacer.scheduler.timers` - retry delays, run deadlines, lease expiry, flushes.

Everything runs on the scheduler's event loop, so the in-memory state needs no
locks. Every change is written to the database in one transaction
(:meth:`TaskScheduler.transaction`) before it becomes visible (queued or
answered), so a restart rebuilds exactly this state from the database, and a
failed write reloads the active runs from it.

All time comes from the injected clock: ``clock.now()`` for stored timestamps
and deadlines, ``clock.monotonic()`` for leases. Loop timers only schedule the
wake-ups; with a :class:`~ppacer.timeutils.ManualClock` a test moves the clock
and calls :meth:`TaskScheduler.expire_leases` rather than waiting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from ppacer.api.models import StatusReport, TaskToExec
from ppacer.dag.dag import Registry
from ppacer.dag.status import TaskStatus
from ppacer.db import dagruns as runs_db
from ppacer.errors import PpacerError
from ppacer.notify import Notifier
from ppacer.scheduler import operations
from ppacer.scheduler.active_runs import ActiveRuns
from ppacer.scheduler.dbgate import DatabaseGate, DatabaseUnavailableError, is_unavailable
from ppacer.scheduler.dispatch import Dispatch
from ppacer.scheduler.leases import ExecutorInfo, LeaseKeeper, lease_token
from ppacer.scheduler.progress import RunProgress, TaskEvent
from ppacer.scheduler.ready_queue import ReadyQueue
from ppacer.scheduler.reports import check_inactive_report, check_report, check_report_target
from ppacer.scheduler.router import Router
from ppacer.scheduler.runstate import RunState
from ppacer.scheduler.timers import Timers
from ppacer.timeutils import Clock, format_ts

__all__ = ["RunState", "TaskEvent", "TaskScheduler"]

# The lease timer firing this late (seconds, and this share of the lease timeout) means
# the scheduler was not running: its leases are renewed, not expired (expire_leases).
_STALL_MIN_S = 0.5
_STALL_SHARE = 0.25

log = logging.getLogger("ppacer.scheduler")


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
        secret: bytes | None = None,
        recovery_grace_s: float | None = None,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.clock = clock
        self.version = version
        self.notifier = notifier
        self.lease_timeout_s = lease_timeout_s
        self.timeout_grace_s = timeout_grace_s
        #: Active runs by (dag_id, exec_ts).
        self.active: dict[tuple[str, str], RunState] = {}
        #: Leases on handed-out attempts, and the executors holding them.
        # Lease tokens derive from the database's secret: the same after a restart or
        # a takeover, so running attempts' executors keep reporting with theirs.
        self.leases = LeaseKeeper(
            clock,
            lease_timeout_s=lease_timeout_s,
            timeout_grace_s=timeout_grace_s,
            secret=secret,
            recovery_grace_s=recovery_grace_s,
        )
        #: Executors heard from (pops and heartbeats), by name.
        self.executors: dict[str, ExecutorInfo] = self.leases.executors
        self.timers = Timers(clock)
        self.progress = RunProgress(
            clock,
            version,
            notifier,
            self.leases,
            self.timers,
            active=self.active,
            transaction=self.transaction,
            run_finished=self._run_finished,
        )
        self.runs = ActiveRuns(registry, version, self.progress, self.timers, self.active)
        #: The ready queue and the hand-out of its attempts to executors.
        self.dispatch = Dispatch(
            self.active,
            self.leases,
            self.progress,
            self.timers,
            writable=self.writable,
            leased=self._arm_lease_timer,
            flush_running=self._flush_running,
        )
        #: Ready attempts and the long polls waiting for them.
        self.ready: ReadyQueue[TaskToExec] = self.dispatch.ready
        #: Which executor may take which queued attempt (queues, code versions).
        self.router: Router = self.dispatch.router
        #: Called after a run finishes (the watcher uses it to learn about free slots).
        self.on_run_finished: Callable[[RunState], None] | None = None
        #: Whether the database takes writes (see ppacer.scheduler.dbgate); the core sets it.
        self.gate: DatabaseGate | None = None
        # True after a write failed for want of the database: memory may hold what the
        # database does not, so nothing is handed out or acknowledged until reconciled.
        self.stale = False

    @property
    def observers(self) -> list[Callable[[TaskEvent], None]]:
        """Called (after the commit) with every task status change; metrics and the UI
        append here. An observer that raises is logged and ignored."""
        return self.progress.observers

    # ------------------------------------------------------------------ views and life cycle

    def now_ts(self) -> str:
        """The current time in stored form."""
        return format_ts(self.clock.now())

    def is_active(self, dag_id: str, exec_ts: str) -> bool:
        """Whether the run at ``exec_ts`` (stored form) is being scheduled now."""
        return (dag_id, exec_ts) in self.active

    def lease_count(self) -> int:
        """Attempts leased to executors now."""
        return len(self.leases)

    def ready_count(self) -> int:
        """Attempts ready, waiting for an executor."""
        return len(self.ready)

    def queued_runs(self) -> int:
        """Runs waiting for a free slot under their DAG's ``max_active_runs``."""
        return self.runs.queued_count()

    def stats(self) -> dict[str, int]:
        """Queue lengths for the UI and metrics."""
        return {
            "ready": len(self.ready),
            "active_runs": len(self.active),
            "queued_runs": self.queued_runs(),
            "waiters": self.ready.waiters,
        }

    def executors_view(self, connected_within_s: float | None = None) -> list[ExecutorInfo]:
        """Executors heard from, most recent first (within ``connected_within_s``, if given)."""
        return self.leases.view(connected_within_s)

    def start_timers(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the running loop and start the timers asked for while loading runs."""
        self.timers.bind(loop)
        self._arm_lease_timer()

    def release_waiters(self) -> None:
        """Answer every pending long poll with "nothing" (used when stopping)."""
        self.ready.release_waiters()

    def stop(self) -> None:
        """Cancel every run's timers and the lease and flush timers (the app is stopping)."""
        self.timers.stop()

    # ------------------------------------------------------------------ the write transaction

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction; attempts scheduled in it are queued only after it commits.

        If it fails, the runs it touched are reloaded from the database, so
        memory never holds what the database does not.
        """
        progress = self.progress
        try:
            with self.engine.begin() as conn:
                yield conn
                progress.write_pending(conn)
        except PpacerError:
            # Raised by checks before anything was written or changed in memory.
            progress.abandon()
            raise
        except BaseException as exc:
            progress.abandon()
            if is_unavailable(exc):
                self._unavailable(exc)
                raise DatabaseUnavailableError(str(exc)) from exc
            self._reload_active()
            raise
        outbox, progress.outbox = progress.outbox, []
        for state, task_id, retry in outbox:
            self.dispatch.push(state, task_id, retry)
        self.dispatch.offer()
        events, progress.events = progress.events, []
        for event in events:
            for observer in progress.observers:
                try:
                    observer(event)
                except Exception:
                    log.exception("task event observer %r failed", observer)

    def _flush_running(self) -> None:
        if not self.progress.has_running:
            return
        try:
            with self.transaction():
                pass
        except Exception:
            log.exception("could not write RUNNING statuses")

    def _unavailable(self, exc: BaseException) -> None:
        """A write failed for want of the database: memory is stale until reconciled."""
        self.stale = True
        if self.gate is not None:
            self.gate.failed(exc)

    def use_registry(self, registry: Registry) -> None:
        """Start new runs from ``registry`` (a hot reload); active runs keep their DAGs."""
        self.registry = registry
        self.runs.registry = registry

    def writable(self) -> bool:
        """Whether writes may be tried now (the database takes them, memory is current)."""
        return not self.stale and (self.gate is None or self.gate.is_open)

    def require_writable(self) -> None:
        """Raise :class:`DatabaseUnavailableError` (HTTP 503: retry) unless :meth:`writable`."""
        if self.gate is not None:
            self.gate.require_open()
        if self.stale:
            raise DatabaseUnavailableError("the scheduler is reconciling with its database")

    def reconcile(self) -> int:
        """Rebuild memory from the database after an outage; return the active runs.

        Leases of running attempts restart at their full timeout: their executors
        could not report while the database was away. Raises if the database fails.
        """
        self._rebuild()
        self.stale = False
        self.leases.renew_all()
        self._arm_lease_timer()
        return len(self.active)

    def _reload_active(self) -> None:
        """Rebuild all active runs from the database after a failed write."""
        try:
            self._rebuild()
        except Exception as exc:
            if is_unavailable(exc):
                self._unavailable(exc)
                return
            log.exception("could not reload active DAG runs from the database")
        self._arm_lease_timer()

    def _rebuild(self) -> None:
        """Forget the runs in memory and load the unfinished ones from the database.

        Attempts in executors' hands keep their leases; every other open attempt
        is queued again (the queue starts empty, so nothing is queued twice).
        """
        progress = self.progress
        self.ready.drain()
        progress.abandon()
        with self.engine.begin() as conn:
            self.runs.reload(conn)
            progress.write_pending(conn)
        outbox, progress.outbox = progress.outbox, []
        progress.events.clear()
        for state, task_id, retry in outbox:
            self.dispatch.push(state, task_id, retry)
        self.ready.dispatch()

    # ------------------------------------------------------------------ runs

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
        self.runs.submit(conn, row, new_params=new_params)

    def load_run(
        self,
        conn: Connection,
        row: runs_db.DagRunRow,
        *,
        reset: Collection[str] = (),
    ) -> None:
        """Make a run active from its database rows and schedule whatever is ready.

        New, recovered, restarted and cleared runs all come through here; the
        tasks in ``reset`` get a new attempt. With ``recover=False`` (reloading
        while executors work on) SCHEDULED and RUNNING attempts are left as
        they are. See :meth:`ActiveRuns.load`.
        """
        self.runs.load(conn, row, reset=reset)

    def unload_run(self, dag_id: str, exec_ts: str, task_id: str) -> None:
        """Stop scheduling a run to rebuild it: its timers stop, ``task_id``'s leases go.

        Its other attempts keep their leases; its queued attempts are dropped
        when popped (they are no longer current).
        """
        if self.runs.unload(dag_id, exec_ts) is not None:
            self.leases.release_task(dag_id, exec_ts, task_id)
            self.ready.remove_if(lambda item: (item.dag_id, item.exec_ts) == (dag_id, exec_ts))

    def fail_run(self, conn: Connection, state: RunState, reason: str) -> None:
        """End an active run now: unfinished attempts FAILED with ``reason``, the rest
        UPSTREAM_FAILED, the run FAILED (and notified)."""
        self.progress.fail_run(conn, state, reason)

    def _run_finished(self, conn: Connection, state: RunState) -> None:
        self.runs.finished(conn, state)
        if self.on_run_finished is not None:
            self.on_run_finished(state)

    # ------------------------------------------------------------------ handing out attempts

    async def pop(self, wait_s: float, executor: str | None = None) -> TaskToExec | None:
        """Return the next ready attempt ``executor`` may take, waiting up to ``wait_s`` for one.

        The attempt comes with a lease for ``executor`` (see :mod:`ppacer.scheduler.leases`).
        """
        items = await self.dispatch.pop_many(wait_s, executor, 1)
        return items[0] if items else None

    async def pop_many(self, wait_s: float, executor: str | None, max_n: int) -> list[TaskToExec]:
        """Up to ``max_n`` ready attempts, leased (see :meth:`Dispatch.pop_many`)."""
        return await self.dispatch.pop_many(wait_s, executor, max_n)

    # ------------------------------------------------------------------ leases

    def heartbeat(
        self, executor: str, tokens: Iterable[str], running: int, capacity: int | None
    ) -> list[str]:
        """Renew ``executor``'s leases; return the tokens it no longer holds (expired, unknown).

        A lease is not renewed past its attempt's timeout (plus grace): liveness
        is about progress, not about the executor process being up.
        """
        lost = self.leases.heartbeat(executor, tokens, running, capacity)
        self._arm_lease_timer()
        return lost

    def expire_leases(self) -> None:
        """Fail the attempts whose lease the clock says has expired ("executor lost" or timeout).

        The lease timer calls it at the earliest expiry; a test with a
        :class:`~ppacer.timeutils.ManualClock` calls it after moving the clock.
        """
        if not self.writable():
            return  # lease clocks pause: reconcile() restarts them at their full timeout
        late = self.timers.lease_late_s
        if late > max(_STALL_MIN_S, self.leases.lease_timeout_s * _STALL_SHARE):
            # The scheduler itself did not run (SIGSTOP, a blocked loop): the executors'
            # heartbeats of that time wait unread in its sockets. Its lease clocks were
            # not counting: every lease gets its full timeout again instead of expiring.
            log.warning(
                "the scheduler did not run for %.1f s (paused or blocked): %d lease(s) "
                "get their full timeout again instead of expiring",
                late,
                len(self.leases),
            )
            self.leases.renew_all()
            self._arm_lease_timer()
            return
        for lease in self.leases.pop_expired():
            self.progress.lease_expired(lease)
        self._arm_lease_timer()

    def _arm_lease_timer(self) -> None:
        self.timers.lease_at(self.leases.next_expiry(), self.expire_leases)

    # ------------------------------------------------------------------ status reports

    def apply_report(self, report: StatusReport) -> None:
        """Apply one report; its error is raised."""
        self.require_writable()
        with self.transaction() as conn:
            self._apply_report(conn, report)

    def update_statuses(self, reports: Sequence[StatusReport]) -> list[PpacerError | None]:
        """Apply many reports in one transaction, in order; per report, the error or None."""
        self.require_writable()
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
        check_report_target(self.registry, report)
        state = self.active.get((report.dag_id, report.exec_ts))
        if state is None:
            with self.engine.connect() as read_conn:
                check_inactive_report(read_conn, report)
            return
        lease = expected = None
        if report.lease_token is not None:
            attempt = (report.dag_id, report.exec_ts, report.task_id, report.retry)
            lease = self.leases.for_attempt(attempt)
            # The attempt's token: its live lease carries it; derived again (an HMAC) only
            # for a report whose lease is gone or another's.
            if lease is not None and lease.token == report.lease_token:
                expected = lease.token
            else:
                expected = lease_token(self.leases.table.secret, attempt)
        accepted = check_report(state, report, lease, expected)
        if accepted is not None:  # None: a repeated report (a pending RUNNING row is written)
            self.progress.apply_report(conn, state, report, accepted)

    # ------------------------------------------------------------------ operator actions

    def restart_run(self, dag_id: str, exec_ts: datetime, actor: str = "api") -> int:
        """Restart a FAILED run (failed and upstream-failed tasks run again); return its number."""
        self.require_writable()
        return operations.restart_run(self, dag_id, exec_ts, actor)

    def clear_task(
        self, dag_id: str, exec_ts: datetime, task_id: str, actor: str = "api"
    ) -> list[str]:
        """Run a task and everything downstream of it again in a finished run; return their ids."""
        self.require_writable()
        return operations.clear_task(self, dag_id, exec_ts, task_id, actor)

    def mark_task(
        self, dag_id: str, exec_ts: datetime, task_id: str, status: TaskStatus, actor: str = "api"
    ) -> None:
        """Set a task's latest attempt to SUCCESS or FAILED by hand; the run goes on from there.

        See :func:`ppacer.scheduler.operations.mark_task`.
        """
        self.require_writable()
        operations.mark_task(self, dag_id, exec_ts, task_id, status, actor)
