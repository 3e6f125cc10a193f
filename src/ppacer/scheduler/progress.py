"""Moving active runs on: each status change written, and what it sets off downstream.

:class:`RunProgress` applies the decisions of :mod:`ppacer.scheduler.runstate`
in the caller's write transaction: it writes every task status change (and
only legal ones), schedules new attempts, settles children, retries failed
attempts after their delay and finishes runs. What must wait for the commit
(attempts to queue, events to tell observers) it collects in :attr:`outbox`
and :attr:`events`; the task scheduler's ``transaction()`` hands them on, or
drops them if the transaction fails. What a timer sets off (a retry whose
delay is over, a run's deadline, an expired lease) is written in a
transaction of its own.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Collection, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection

from ppacer.api.models import StatusReport
from ppacer.dag.status import DagRunStatus, TaskStatus, check_task_transition
from ppacer.db import dagruns as runs_db
from ppacer.db import dagruntasks as tasks_db
from ppacer.errors import ConflictError
from ppacer.notify import Message, Notifier, send_safely
from ppacer.scheduler.leases import AttemptKey, Lease, LeaseKeeper
from ppacer.scheduler.reports import Accepted
from ppacer.scheduler.runstate import RunState
from ppacer.scheduler.timers import RunKey, Timers
from ppacer.timeutils import Clock, format_ts, parse_ts

__all__ = ["RunProgress", "TaskEvent"]

log = logging.getLogger("ppacer.scheduler")


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


class RunProgress:
    """Writes the changes of active runs and collects what to do once they commit."""

    def __init__(
        self,
        clock: Clock,
        version: str,
        notifier: Notifier | None,
        leases: LeaseKeeper,
        timers: Timers,
        *,
        active: Mapping[RunKey, RunState],
        transaction: Callable[[], AbstractContextManager[Connection]],
        run_finished: Callable[[Connection, RunState], None],
    ) -> None:
        self.clock = clock
        self.version = version
        self.notifier = notifier
        self.leases = leases
        self.timers = timers
        # The active runs: a timer whose run is no longer the active one does nothing.
        self._active = active
        # The task scheduler's write transaction, for what timers set off.
        self._transaction = transaction
        # Called after a run finished, in its transaction (to free the run's slot).
        self._run_finished = run_finished
        #: Told every status change after the commit.
        self.observers: list[Callable[[TaskEvent], None]] = []
        #: Attempts to queue once the current transaction commits: (run, task id, retry).
        self.outbox: list[tuple[RunState, str, int]] = []
        #: Status changes to tell observers once the current transaction commits.
        self.events: list[TaskEvent] = []
        # Attempts handed out (RUNNING in memory) whose RUNNING row is not written yet,
        # with how they started: written by the next transaction (or with their final
        # status, when they finish first).
        self._running: dict[AttemptKey, tuple[RunState, tasks_db.Started]] = {}
        # Starts of attempts to record with the current transaction.
        self._starts: list[tuple[str, str, str, int, tasks_db.Started]] = []
        # Status changes of the current transaction, in order, written as it ends
        # (:meth:`write_pending`): one statement for a batch of reports, which on
        # PostgreSQL is one round trip instead of one per report.
        self._statuses: list[tuple[str, str, str, int, TaskStatus, str]] = []

    def record(self, state: RunState, task_id: str, retry: int, status: TaskStatus) -> None:
        """Note a status change for the observers (nothing is built when there are none)."""
        if self.observers:
            self.events.append(
                TaskEvent(state.dag.id, state.exec_ts, task_id, retry, status, self.clock.now())
            )

    def set_status(
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
        # A quick attempt finishes before its RUNNING row was written: its start is
        # recorded with this transaction, its RUNNING status never needs writing.
        key = (state.dag.id, state.exec_ts, task_id, retry)
        pending = self._running.pop(key, None)
        if pending is not None:
            self._starts.append((*key, pending[1]))
        self._statuses.append((*key, status, now))
        state.latest[task_id] = (retry, status)
        self.record(state, task_id, retry, status)

    def mark_running(
        self,
        state: RunState,
        task_id: str,
        retry: int,
        executor: str | None = None,
        code_version: str | None = None,
    ) -> bool:
        """The attempt was handed to ``executor``: it is RUNNING (False: it was not SCHEDULED).

        ``code_version`` is the task's code the executor has (None: it announced
        none). The row is written by the next transaction (:meth:`write_pending`);
        a crash before that leaves it SCHEDULED, which recovery treats as it
        treats RUNNING: the attempt is queued again.
        """
        if state.latest.get(task_id) != (retry, TaskStatus.SCHEDULED):
            return False
        state.latest[task_id] = (retry, TaskStatus.RUNNING)
        self.record(state, task_id, retry, TaskStatus.RUNNING)
        started = tasks_db.Started(format_ts(self.clock.now()), executor, code_version)
        self._running[(state.dag.id, state.exec_ts, task_id, retry)] = (state, started)
        return True

    def abandon(self) -> None:
        """The current transaction was rolled back: forget what it would have written,
        queued and told (the runs it touched are reloaded from the database)."""
        self.outbox.clear()
        self.events.clear()
        self._statuses.clear()

    @property
    def has_running(self) -> bool:
        """Whether RUNNING rows (or starts) wait to be written."""
        return bool(self._running or self._starts)

    def write_pending(self, conn: Connection) -> None:
        """End of a write transaction: write its status changes, then the RUNNING rows and
        starts of attempts handed out since the last transaction."""
        changes, self._statuses = self._statuses, []
        if self._running:
            pending, self._running = self._running, {}
            for key, (state, started) in pending.items():
                task_id, retry = key[2], key[3]
                self._starts.append((*key, started))
                if state.latest.get(task_id) != (retry, TaskStatus.RUNNING):
                    continue  # taken back (a lease lost, a run failed): its own row says it
                changes.append((*key, TaskStatus.RUNNING, started.start_ts))
                self.run_started(conn, state, started.start_ts)
        tasks_db.update_dag_run_task_statuses(conn, changes)  # all of them in one statement
        if self._starts:
            starts, self._starts = self._starts, []
            tasks_db.insert_task_starts(conn, starts)

    def apply_report(
        self, conn: Connection, state: RunState, report: StatusReport, accepted: Accepted
    ) -> None:
        """Write a report that :func:`~ppacer.scheduler.reports.check_report` accepted."""
        task_id, retry, token = report.task_id, report.retry, report.lease_token
        status = accepted.status
        now = format_ts(self.clock.now())
        log.info(
            "Updating dag run task status dagId=%s execTs=%s taskId=%s retry=%d "
            "currentStatus=%s newStatus=%s",
            report.dag_id,
            report.exec_ts,
            task_id,
            retry,
            accepted.current,
            status,
        )
        self.run_started(conn, state, now)
        if status is TaskStatus.RUNNING:
            self.set_status(conn, state, task_id, retry, status, now)
            if token is not None:
                self.leases.renew(token)
            return
        if token is not None:
            state.closed_leases[(task_id, retry)] = token
        self.leases.release((report.dag_id, report.exec_ts, task_id, retry))
        if status is TaskStatus.SUCCESS:
            self.succeed(conn, state, task_id, retry, now, report.output, report.branch)
        else:
            self.fail(conn, state, task_id, retry, accepted.task_error, now)

    def run_started(self, conn: Connection, state: RunState, at: str) -> None:
        """The run's first attempt started: the run is RUNNING."""
        if state.status is DagRunStatus.SCHEDULED:
            state.status = DagRunStatus.RUNNING
            runs_db.update_dag_run_status(conn, state.run_id, DagRunStatus.RUNNING, at)

    def schedule(
        self, conn: Connection, state: RunState, task_ids: Iterable[str], now: str
    ) -> None:
        """New SCHEDULED attempts of ``task_ids``, queued once the transaction commits."""
        attempts = state.start(task_ids)
        for task_id, retry, status in attempts:
            self.record(state, task_id, retry, status)
        tasks_db.insert_dag_run_tasks(
            conn, state.dag.id, state.exec_ts, attempts, now, self.version
        )
        self.outbox.extend((state, task_id, retry) for task_id, retry, _ in attempts)

    def settle_children(
        self,
        conn: Connection,
        state: RunState,
        task_id: str,
        now: str,
        skip: Collection[str] = (),
    ) -> None:
        """``task_id`` has finished: write what its children (and theirs) do, schedule the ready."""
        settlement = state.settle_children(task_id, skip)
        for child, retry, status in settlement.settled:
            self.record(state, child, retry, status)
        tasks_db.insert_dag_run_tasks(
            conn, state.dag.id, state.exec_ts, settlement.settled, now, self.version
        )
        self.schedule(conn, state, settlement.ready, now)

    def succeed(
        self,
        conn: Connection,
        state: RunState,
        task_id: str,
        retry: int,
        now: str,
        output: Any = None,
        branch: list[str] | None = None,
    ) -> None:
        """The attempt succeeded (returning ``output``, following ``branch``): go on downstream."""
        self.set_status(conn, state, task_id, retry, TaskStatus.SUCCESS, now)
        if output is not None:
            tasks_db.insert_task_output(
                conn, state.dag.id, state.exec_ts, task_id, retry, json.dumps(output), now
            )
            state.outputs[task_id] = output
        state.unfinished -= 1
        skip = () if branch is None else state.skipped_by_branch(task_id, branch)
        self.settle_children(conn, state, task_id, now, skip)
        if state.unfinished == 0:
            self.finish_run(conn, state, now)

    def fail(
        self,
        conn: Connection,
        state: RunState,
        task_id: str,
        retry: int,
        error: str | None,
        now: str,
    ) -> None:
        """The attempt failed with ``error``: retry it after its delay, or fail it for good."""
        config = state.dag.tasks[task_id].config
        if error:
            tasks_db.insert_task_error(
                conn, state.dag.id, state.exec_ts, task_id, retry, error, now
            )
        if state.retry_allowed(task_id, retry):
            self.set_status(conn, state, task_id, retry, TaskStatus.FAILED_PENDING_RETRY, now)
            self.timers.retry_in(
                state.key,
                task_id,
                config.retry_delay_for(retry),
                partial(self._retry_due, state, task_id, retry + 1),
            )
            if config.send_alert_on_retry:
                self.notify("task_retry", state, task_id, retry, error)
            return
        self.set_status(conn, state, task_id, retry, TaskStatus.FAILED, now)
        state.unfinished -= 1
        if config.send_alert_on_failure:
            self.notify("task_failed", state, task_id, retry, error)
        self.settle_children(conn, state, task_id, now)
        if state.unfinished == 0:
            self.finish_run(conn, state, now)

    def resume_retry(
        self, state: RunState, task_id: str, failed_retry: int, failed_at: datetime
    ) -> None:
        """Retry an attempt that failed at ``failed_at`` (before a reload) after its delay."""
        delay = timedelta(seconds=state.dag.tasks[task_id].config.retry_delay_for(failed_retry))
        self.timers.retry_at(
            state.key,
            task_id,
            failed_at + delay,
            partial(self._retry_due, state, task_id, failed_retry + 1),
        )

    def watch_deadline(self, state: RunState) -> None:
        """Fail the run if it is still active when its DAG's ``run_timeout_s`` is over."""
        timeout = state.dag.attributes.run_timeout_s
        if timeout is not None:
            due = parse_ts(state.insert_ts) + timedelta(seconds=timeout)
            self.timers.deadline_at(state.key, due, partial(self._deadline_due, state))

    def _retry_due(self, state: RunState, task_id: str, retry: int) -> None:
        if self._active.get(state.key) is not state:
            return
        try:
            with self._transaction() as conn:
                del state.latest[task_id]
                state.next_retry[task_id] = retry
                self.schedule(conn, state, [task_id], format_ts(self.clock.now()))
        except Exception:
            # The run was reloaded from the database, which restarts the retry timer.
            log.exception("could not schedule retry %d of %s/%s", retry, state.dag.id, task_id)

    def _deadline_due(self, state: RunState) -> None:
        if self._active.get(state.key) is not state:
            return
        timeout = state.dag.attributes.run_timeout_s or 0
        reason = f"DAG run timed out: it ran longer than its run_timeout_s of {timeout:g} s"
        log.warning("DAG run %s of %s: %s", state.exec_ts, state.dag.id, reason)
        try:
            with self._transaction() as conn:
                self.fail_run(conn, state, reason)
        except Exception:
            log.exception("could not fail timed-out DAG run %s of %s", state.exec_ts, state.dag.id)

    def lease_expired(self, lease: Lease) -> None:
        """Fail the attempt of an expired lease ("executor lost", or its timeout), if current."""
        dag_id, exec_ts, task_id, retry = lease.attempt
        state = self._active.get((dag_id, exec_ts))
        if state is None or state.latest.get(task_id) not in (
            (retry, TaskStatus.SCHEDULED),
            (retry, TaskStatus.RUNNING),
        ):
            return  # finished, or taken back, meanwhile
        if lease.provisional:
            self._requeue_lost(state, task_id, retry, lease)
            return
        reason = self.leases.lost_reason(lease, state.dag.tasks[task_id].config.timeout_s)
        log.warning("%s", reason)
        try:
            with self._transaction() as conn:
                self.fail(conn, state, task_id, retry, reason, format_ts(self.clock.now()))
        except Exception:
            log.exception("could not fail the lost attempt %s", lease.describe)

    def _requeue_lost(self, state: RunState, task_id: str, retry: int, lease: Lease) -> None:
        """An attempt given back after a restart whose executor never came back: queue it."""
        log.warning("no heartbeat for %s since the scheduler started: queued again", lease.describe)
        try:
            with self._transaction() as conn:
                now = format_ts(self.clock.now())
                if state.latest.get(task_id) == (retry, TaskStatus.RUNNING):
                    self.set_status(conn, state, task_id, retry, TaskStatus.SCHEDULED, now)
                self.outbox.append((state, task_id, retry))
        except Exception:
            log.exception("could not queue %s again", lease.describe)

    def fail_run(self, conn: Connection, state: RunState, reason: str) -> None:
        """End an active run now: unfinished attempts FAILED with ``reason``, the rest
        UPSTREAM_FAILED, the run FAILED (and notified)."""
        now = format_ts(self.clock.now())
        self.timers.cancel_run(state.key)
        not_started = state.fail_unstarted()
        for task_id in state.dag.tasks:
            retry, status = state.latest[task_id]
            if not status.is_terminal:
                self.leases.release((state.dag.id, state.exec_ts, task_id, retry))
                tasks_db.insert_task_error(
                    conn, state.dag.id, state.exec_ts, task_id, retry, reason, now
                )
                self.set_status(conn, state, task_id, retry, TaskStatus.FAILED, now)
        tasks_db.insert_dag_run_tasks(
            conn, state.dag.id, state.exec_ts, not_started, now, self.version
        )
        state.unfinished = 0
        self.notify("dag_run_timeout", state, error=reason)
        self.finish_run(conn, state, now)

    def finish_run(self, conn: Connection, state: RunState, now: str) -> None:
        """Every task has finished: the run is SUCCESS or FAILED (and notified if it failed)."""
        failed = state.is_failed()
        state.status = DagRunStatus.FAILED if failed else DagRunStatus.SUCCESS
        runs_db.update_dag_run_status(conn, state.run_id, state.status, now)
        self.timers.cancel_run(state.key)
        log.info(
            "DAG run finished dagId=%s execTs=%s status=%s",
            state.dag.id,
            state.exec_ts,
            state.status,
        )
        if failed:
            errors = tasks_db.read_task_errors(conn, state.dag.id, state.exec_ts)
            first = next(iter(errors.items()), None)
            self.notify(
                "dag_run_failed",
                state,
                first[0][0] if first else None,
                first[0][1] if first else None,
                first[1] if first else None,
            )
        self._run_finished(conn, state)

    def notify(
        self,
        kind: str,
        state: RunState,
        task_id: str | None = None,
        retry: int | None = None,
        error: str | None = None,
    ) -> None:
        """Send a notification (never raises: a failing notifier is logged)."""
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
                    "at": format_ts(self.clock.now()),
                },
            ),
        )
