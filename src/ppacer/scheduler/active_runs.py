"""The DAG runs being scheduled: loaded from the database, started in order under a limit.

A run becomes active when it is loaded (:meth:`ActiveRuns.load`): its state is
rebuilt from its rows - a new run has none, a recovered one keeps its SUCCESS
tasks, queues its SCHEDULED attempts again, gives its RUNNING attempts their
leases back (their executors work on) and resumes its pending retries, a
restarted or cleared one gives the reset tasks a new attempt - and
whatever is ready is scheduled. A DAG's ``max_active_runs`` holds further runs
back, in order, until an active one finishes (:meth:`ActiveRuns.submit`).

Loading writes through :class:`~ppacer.scheduler.progress.RunProgress` in the
caller's transaction, like every other change.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, deque
from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection

from ppacer.dag.dag import Registry
from ppacer.dag.status import DagRunStatus, TaskStatus
from ppacer.db import dagruns as runs_db
from ppacer.db import dagruntasks as tasks_db
from ppacer.scheduler.progress import RunProgress
from ppacer.scheduler.runstate import RunState
from ppacer.scheduler.timers import RunKey, Timers
from ppacer.timeutils import format_ts, parse_ts

__all__ = ["ActiveRuns"]

log = logging.getLogger("ppacer.scheduler")


class ActiveRuns:
    """Active runs by ``(dag_id, exec_ts)``, and the runs waiting for a slot."""

    def __init__(
        self,
        registry: Registry,
        version: str,
        progress: RunProgress,
        timers: Timers,
        by_key: dict[RunKey, RunState],
    ) -> None:
        self.registry = registry
        self.version = version
        self.progress = progress
        self.timers = timers
        #: The active runs, filled here (the dict is shared with the task scheduler).
        self.by_key = by_key
        # Active runs by DAG (kept with ``by_key``: counting it per new run was quadratic).
        self._count: Counter[str] = Counter()
        # Runs waiting for a slot under their DAG's max_active_runs, by DAG, in order.
        self._queued: dict[str, deque[int]] = {}
        # Runs being submitted that were created just now (no attempts, outputs or
        # restarts to read back): RunId -> their parameters.
        self._new: dict[int, dict[str, Any]] = {}

    def queued_count(self) -> int:
        """Runs waiting for a free slot under their DAG's ``max_active_runs``."""
        return sum(len(q) for q in self._queued.values())

    def submit(
        self,
        conn: Connection,
        row: runs_db.DagRunRow,
        *,
        new_params: dict[str, Any] | None = None,
    ) -> None:
        """Start a run now, or queue it (in order) behind its DAG's ``max_active_runs``.

        ``new_params`` (the run's parameters) says the run was created just
        now: nothing of it needs reading back if it starts at once.
        """
        dag = self.registry.get(row.dag_id)
        if dag is None:
            log.warning("DAG run %s of unknown DAG %r left as it is", row.run_id, row.dag_id)
            return
        self._queued.setdefault(dag.id, deque()).append(row.run_id)
        if new_params is not None:
            self._new[row.run_id] = new_params
        self._start_queued(conn, dag.id, row)
        # A run left waiting is read again (whatever happened to it meanwhile) when it starts.
        self._new.pop(row.run_id, None)

    def load(
        self,
        conn: Connection,
        row: runs_db.DagRunRow,
        *,
        reset: Collection[str] = (),
    ) -> None:
        """Make a run active from its rows and schedule whatever is ready (see the module)."""
        dag = self.registry.get(row.dag_id)
        if dag is None:
            log.warning("DAG run %s of unknown DAG %r left as it is", row.run_id, row.dag_id)
            return
        new_params = self._new.pop(row.run_id, None)
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
        progress = self.progress
        now = format_ts(progress.clock.now())
        attempts = [] if new else tasks_db.read_dag_run_tasks(conn, row.dag_id, row.exec_ts)
        requeue: list[tuple[RunState, str, int]] = []
        rows = {(a.task_id, a.retry): a for a in attempts}
        for task_id, retry, status in state.restore(
            ((a.task_id, a.retry, a.status) for a in attempts), reset
        ):
            if status is TaskStatus.FAILED_PENDING_RETRY:
                progress.resume_retry(
                    state, task_id, retry, parse_ts(rows[(task_id, retry)].status_update_ts)
                )
            elif self._still_running(state, rows[(task_id, retry)]):
                continue  # its executor works on: it keeps (or gets back) its lease
            else:
                requeue.append((state, task_id, retry))
        if not new:
            outputs = tasks_db.read_task_outputs(conn, row.dag_id, row.exec_ts)
            for (task_id, retry), value in outputs.items():
                if state.latest.get(task_id) == (retry, TaskStatus.SUCCESS):
                    state.outputs[task_id] = json.loads(value)
        settlement = state.settle_unstarted()
        tasks_db.insert_dag_run_tasks(
            conn, dag.id, row.exec_ts, settlement.settled, now, self.version
        )
        if state.status is DagRunStatus.READY_TO_SCHEDULE or state.status.is_finished:
            state.status = DagRunStatus.SCHEDULED
            runs_db.update_dag_run_status(conn, row.run_id, DagRunStatus.SCHEDULED, now)
        if state.key not in self.by_key:
            self._count[dag.id] += 1
        self.by_key[state.key] = state
        progress.schedule(conn, state, settlement.ready, now)
        progress.outbox.extend(requeue)
        if state.unfinished == 0:
            progress.finish_run(conn, state, now)
        else:
            progress.watch_deadline(state)

    def _still_running(self, state: RunState, row: tasks_db.DagRunTaskRow) -> bool:
        """Whether an open attempt is in an executor's hands: it keeps its lease.

        A RUNNING attempt (an executor took it) gets its lease back with its
        token (derived from the attempt), so its executor's heartbeats and report
        are taken; if the executor is gone the lease expires and the attempt is
        retried. A SCHEDULED attempt that holds a lease was handed out just before
        its RUNNING row could be written: it is RUNNING.
        """
        leases = self.progress.leases
        key = (state.dag.id, state.exec_ts, row.task_id, row.retry)
        held = leases.for_attempt(key)
        if row.status is TaskStatus.SCHEDULED:
            if held is None:
                return False
            self.progress.mark_running(state, row.task_id, row.retry, held.executor, None)
            return True
        if held is None:
            timeout_s = state.dag.tasks[row.task_id].config.timeout_s
            leases.give_back(key, row.executor, timeout_s)
        return True

    def unload(self, dag_id: str, exec_ts: str) -> RunState | None:
        """Stop scheduling a run (to rebuild it) and cancel its timers; its state, if active."""
        state = self._deactivate(dag_id, exec_ts)
        if state is not None:
            self.timers.cancel_run(state.key)
        return state

    def finished(self, conn: Connection, state: RunState) -> None:
        """A run finished (in ``conn``'s transaction): start the next queued run of its DAG."""
        self._deactivate(state.dag.id, state.exec_ts)
        self._start_queued(conn, state.dag.id)

    def reload(self, conn: Connection) -> None:
        """Forget every run and load the unfinished ones again (after a failed write).

        Attempts in executors' hands keep their leases; the others are queued again
        (the caller emptied the ready queue).
        """
        for key in self.by_key:
            self.timers.cancel_run(key)
        self.by_key.clear()
        self._count.clear()
        self._queued.clear()
        self._new.clear()
        for row in runs_db.read_unfinished_dag_runs(conn):
            if row.status is DagRunStatus.READY_TO_SCHEDULE:
                self.submit(conn, row)
            else:
                self.load(conn, row)

    def _start_queued(
        self, conn: Connection, dag_id: str, just_read: runs_db.DagRunRow | None = None
    ) -> None:
        queued = self._queued.get(dag_id)
        limit = self.registry[dag_id].attributes.max_active_runs
        while queued and self._count[dag_id] < limit:
            run_id = queued.popleft()
            if just_read is not None and just_read.run_id == run_id:
                row: runs_db.DagRunRow | None = just_read
            else:
                row = runs_db.read_dag_run(conn, run_id)
            if (
                row is not None
                and not row.status.is_finished
                and (row.dag_id, row.exec_ts) not in self.by_key
            ):
                self.load(conn, row)

    def _deactivate(self, dag_id: str, exec_ts: str) -> RunState | None:
        state = self.by_key.pop((dag_id, exec_ts), None)
        if state is not None:
            self._count[dag_id] -= 1
        return state
