"""What an operator does to DAG runs: restart a failed run, clear a task, mark a task.

Each is one write transaction of the task scheduler that records what was
done (a ``dagrunevents`` row naming the actor) and then reloads the run, which
schedules whatever became ready. The task scheduler's own methods
(:meth:`TaskScheduler.restart_run` and friends) call these.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection

from ppacer.dag.dag import Registry
from ppacer.dag.status import DagRunStatus, TaskStatus, check_task_transition
from ppacer.db import controls as controls_db
from ppacer.db import dagruns as runs_db
from ppacer.db import dagruntasks as tasks_db
from ppacer.errors import ConflictError, InvalidInputError, NotFoundError
from ppacer.timeutils import format_ts

__all__ = ["RunHost", "clear_task", "mark_task", "restart_run"]

log = logging.getLogger("ppacer.scheduler")


class RunHost(Protocol):
    """What the operations need of the task scheduler."""

    @property
    def registry(self) -> Registry:
        """The DAGs."""
        ...

    @property
    def version(self) -> str:
        """The scheduler's version, stored with new task rows."""
        ...

    def transaction(self) -> AbstractContextManager[Connection]:
        """A write transaction after which scheduled attempts are queued."""
        ...

    def now_ts(self) -> str:
        """The current time in stored form."""
        ...

    def is_active(self, dag_id: str, exec_ts: str) -> bool:
        """Whether the run is being scheduled now."""
        ...

    def load_run(
        self,
        conn: Connection,
        row: runs_db.DagRunRow,
        *,
        reset: Collection[str] = (),
    ) -> None:
        """Make the run active from its rows (``reset`` tasks get a new attempt)."""
        ...

    def unload_run(self, dag_id: str, exec_ts: str, task_id: str) -> None:
        """Stop scheduling the run (to reload it), taking back ``task_id``'s leases."""
        ...


def restart_run(host: RunHost, dag_id: str, exec_ts: datetime, actor: str = "api") -> int:
    """Restart a FAILED run (failed and upstream-failed tasks run again); return its number."""
    stored_ts = format_ts(exec_ts)
    now = host.now_ts()
    with host.transaction() as conn:
        run = _find_run(host.registry, conn, dag_id, stored_ts)
        if run.status is not DagRunStatus.FAILED or host.is_active(dag_id, stored_ts):
            raise InvalidInputError(
                f"DAG {dag_id!r} run {stored_ts} is {run.status}; "
                "only a FAILED run can be restarted"
            )
        number = runs_db.insert_restart(conn, dag_id, stored_ts, now)
        failed = {
            a.task_id
            for a in tasks_db.read_dag_run_tasks(conn, dag_id, stored_ts)
            if a.status in (TaskStatus.FAILED, TaskStatus.UPSTREAM_FAILED)
        }
        controls_db.insert_run_event(
            conn, run.run_id, "RESTART", now, actor, detail={"restart": number}
        )
        host.load_run(conn, run, reset=failed)
    log.info("DAG run restarted dagId=%s execTs=%s restart=%d", dag_id, stored_ts, number)
    return number


def clear_task(
    host: RunHost, dag_id: str, exec_ts: datetime, task_id: str, actor: str = "api"
) -> list[str]:
    """Run a task and everything downstream of it again in a finished run; return their ids."""
    stored_ts = format_ts(exec_ts)
    now = host.now_ts()
    with host.transaction() as conn:
        run = _find_run(host.registry, conn, dag_id, stored_ts, task_id)
        if host.is_active(dag_id, stored_ts):
            raise ConflictError(
                f"DAG {dag_id!r} run {stored_ts} is {run.status}; "
                "clear a task once the run finished"
            )
        cleared = [task_id, *host.registry[dag_id].descendants(task_id)]
        controls_db.insert_run_event(
            conn, run.run_id, "CLEAR", now, actor, task_id, {"cleared": cleared}
        )
        host.load_run(conn, run, reset=set(cleared))
    log.info("task cleared dagId=%s execTs=%s taskId=%s", dag_id, stored_ts, task_id)
    return cleared


def mark_task(
    host: RunHost,
    dag_id: str,
    exec_ts: datetime,
    task_id: str,
    status: TaskStatus,
    actor: str = "api",
) -> None:
    """Set a task's latest attempt to SUCCESS or FAILED by hand; the run goes on from there.

    Marked SUCCESS, its downstream tasks run (also those that had become
    UPSTREAM_FAILED); marked FAILED, it is not retried and its downstream
    becomes UPSTREAM_FAILED. An active run is rebuilt from the database
    around the change; its other attempts go on undisturbed.
    """
    why = check_task_transition(None, status, by="hand")
    if why is not None:
        raise InvalidInputError(f"status: {why}")
    stored_ts = format_ts(exec_ts)
    now = host.now_ts()
    with host.transaction() as conn:
        run = _find_run(host.registry, conn, dag_id, stored_ts, task_id)
        attempts = [
            a for a in tasks_db.read_dag_run_tasks(conn, dag_id, stored_ts) if a.task_id == task_id
        ]
        latest = max(attempts, key=lambda a: a.retry) if attempts else None
        if latest is not None and latest.status == status:
            return
        # Queued attempts of the run are dropped when popped (no longer current).
        host.unload_run(dag_id, stored_ts, task_id)
        if latest is None:
            tasks_db.insert_dag_run_tasks(
                conn, dag_id, stored_ts, [(task_id, 0, status)], now, host.version
            )
        else:
            tasks_db.update_dag_run_task_status(
                conn, dag_id, stored_ts, task_id, latest.retry, status, now
            )
        reset = set()
        if status is TaskStatus.SUCCESS:
            # Downstream tasks that could not run because of it run now.
            downstream = set(host.registry[dag_id].descendants(task_id))
            reset = {
                a.task_id
                for a in tasks_db.read_dag_run_tasks(conn, dag_id, stored_ts)
                if a.task_id in downstream and a.status is TaskStatus.UPSTREAM_FAILED
            }
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
        host.load_run(conn, fresh, reset=reset)
    log.info("task marked %s dagId=%s execTs=%s taskId=%s", status, dag_id, stored_ts, task_id)


def _find_run(
    registry: Registry, conn: Connection, dag_id: str, stored_ts: str, task_id: str | None = None
) -> runs_db.DagRunRow:
    """The run of ``dag_id`` at ``stored_ts`` (and check ``task_id`` is one of its tasks)."""
    dag = registry.get(dag_id)
    if dag is None:
        raise NotFoundError(f"dagId: unknown DAG {dag_id!r}")
    if task_id is not None and task_id not in dag.tasks:
        raise NotFoundError(f"taskId: DAG {dag_id!r} has no task {task_id!r}")
    run = runs_db.read_dag_run_by_exec(conn, dag_id, stored_ts)
    if run is None:
        raise NotFoundError(f"execTs: DAG {dag_id!r} has no run at {stored_ts}")
    return run
