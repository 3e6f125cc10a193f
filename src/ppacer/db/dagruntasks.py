"""Task attempts of DAG runs: ``dagruntasks`` and ``dagruntaskerrors``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row, and_, bindparam, exists, func, insert, select, update

from ppacer.dag.status import TaskStatus
from ppacer.db.dagruns import DagRunRow
from ppacer.db.prepared import Prepared
from ppacer.db.schema import (
    dagruns,
    dagruntaskerrors,
    dagruntaskoutputs,
    dagruntasks,
    dagruntaskstarts,
)
from ppacer.db.taskstarts import Started, insert_task_starts

__all__ = [
    "AttemptTimes",
    "DagRunTaskRow",
    "FailedAttempt",
    "RunningAttempt",
    "Started",
    "count_tasks_by_run",
    "count_tasks_by_status",
    "insert_dag_run_tasks",
    "insert_task_error",
    "insert_task_output",
    "insert_task_starts",
    "read_attempts_of_runs",
    "read_dag_run_tasks",
    "read_failed_attempts",
    "read_running_attempts",
    "read_task_attempts",
    "read_task_errors",
    "read_task_outputs",
    "update_dag_run_task_status",
    "update_dag_run_task_statuses",
]


@dataclass(frozen=True, slots=True)
class DagRunTaskRow:
    """A ``dagruntasks`` row: one attempt of a task in a run."""

    dag_id: str
    exec_ts: str
    task_id: str
    retry: int
    insert_ts: str
    status: TaskStatus
    status_update_ts: str
    version: str
    # When an executor took it (None: never handed out), which one, and the code it ran.
    start_ts: str | None = None
    executor: str | None = None
    code_version: str | None = None


# Every attempt's columns with how it started (NULLs: never handed out, or before).
_WITH_START = select(
    dagruntasks,
    dagruntaskstarts.c.StartTs,
    dagruntaskstarts.c.Executor,
    dagruntaskstarts.c.CodeVersion,
).select_from(
    dagruntasks.outerjoin(
        dagruntaskstarts,
        and_(
            dagruntaskstarts.c.DagId == dagruntasks.c.DagId,
            dagruntaskstarts.c.ExecTs == dagruntasks.c.ExecTs,
            dagruntaskstarts.c.TaskId == dagruntasks.c.TaskId,
            dagruntaskstarts.c.Retry == dagruntasks.c.Retry,
        ),
    )
)


def _row(r: Row[Any]) -> DagRunTaskRow:
    return DagRunTaskRow(
        r.DagId,
        r.ExecTs,
        r.TaskId,
        r.Retry,
        r.InsertTs,
        TaskStatus(r.Status),
        r.StatusUpdateTs,
        r.Version,
        # Read with how it started (NULLs when not joined, or never handed out).
        r._mapping.get("StartTs"),
        r._mapping.get("Executor"),
        r._mapping.get("CodeVersion"),
    )


def insert_dag_run_tasks(
    conn: Connection,
    dag_id: str,
    exec_ts: str,
    attempts: Sequence[tuple[str, int, TaskStatus]],
    now: str,
    version: str,
) -> None:
    """Insert task attempts ``(task_id, retry, status)`` of one run (through the driver)."""
    _INSERT_ATTEMPTS.executemany_tuples(
        conn,
        [
            (dag_id, exec_ts, task_id, retry, now, str(status), now, version)
            for task_id, retry, status in attempts
        ],
    )


_INSERT_ATTEMPTS = Prepared.insert(
    dagruntasks,
    "DagId",
    "ExecTs",
    "TaskId",
    "Retry",
    "InsertTs",
    "Status",
    "StatusUpdateTs",
    "Version",
)


# Built once (constructing SQLAlchemy expressions per call dominated the hot path), run
# through the driver: every change of a task's status goes this way.
_SET_STATUS = Prepared(
    update(dagruntasks)
    .where(
        and_(
            dagruntasks.c.DagId == bindparam("k_dag"),
            dagruntasks.c.ExecTs == bindparam("k_exec"),
            dagruntasks.c.TaskId == bindparam("k_task"),
            dagruntasks.c.Retry == bindparam("k_retry"),
        )
    )
    .values(Status=bindparam("v_status"), StatusUpdateTs=bindparam("v_ts"))
)


def _status_params(
    dag_id: str, exec_ts: str, task_id: str, retry: int, status: TaskStatus, now: str
) -> dict[str, Any]:
    return {
        "k_dag": dag_id,
        "k_exec": exec_ts,
        "k_task": task_id,
        "k_retry": retry,
        "v_status": str(status),
        "v_ts": now,
    }


def update_dag_run_task_status(
    conn: Connection,
    dag_id: str,
    exec_ts: str,
    task_id: str,
    retry: int,
    status: TaskStatus,
    now: str,
) -> int:
    """Set an attempt's status; return the rows changed (0: no such attempt)."""
    params = _status_params(dag_id, exec_ts, task_id, retry, status, now)
    return int(_SET_STATUS.execute(conn, params).rowcount)


def update_dag_run_task_statuses(
    conn: Connection, changes: Sequence[tuple[str, str, str, int, TaskStatus, str]]
) -> None:
    """Set many attempts' statuses ``(dag_id, exec_ts, task_id, retry, status, now)`` at once."""
    if len(changes) == 1:  # a hop's one report: a plain statement (no batch set up)
        update_dag_run_task_status(conn, *changes[0])
    elif changes:
        _SET_STATUS.executemany(conn, [_status_params(*change) for change in changes])


def read_dag_run_tasks(conn: Connection, dag_id: str, exec_ts: str) -> list[DagRunTaskRow]:
    """Return every attempt of every task of a run, in insertion order."""
    rows = conn.execute(
        _WITH_START.where(
            and_(dagruntasks.c.DagId == dag_id, dagruntasks.c.ExecTs == exec_ts)
        ).order_by(dagruntasks.c.InsertTs, dagruntasks.c.TaskId, dagruntasks.c.Retry)
    )
    return [_row(r) for r in rows]


def insert_task_error(
    conn: Connection, dag_id: str, exec_ts: str, task_id: str, retry: int, error: str, now: str
) -> None:
    """Store the error an attempt failed with (the latest report wins)."""
    conn.execute(
        dagruntaskerrors.delete().where(
            and_(
                dagruntaskerrors.c.DagId == dag_id,
                dagruntaskerrors.c.ExecTs == exec_ts,
                dagruntaskerrors.c.TaskId == task_id,
                dagruntaskerrors.c.Retry == retry,
            )
        )
    )
    conn.execute(
        insert(dagruntaskerrors).values(
            DagId=dag_id, ExecTs=exec_ts, TaskId=task_id, Retry=retry, InsertTs=now, Error=error
        )
    )


def read_task_errors(conn: Connection, dag_id: str, exec_ts: str) -> dict[tuple[str, int], str]:
    """Return the stored errors of a run's attempts by ``(task_id, retry)``."""
    rows = conn.execute(
        select(dagruntaskerrors.c.TaskId, dagruntaskerrors.c.Retry, dagruntaskerrors.c.Error).where(
            and_(dagruntaskerrors.c.DagId == dag_id, dagruntaskerrors.c.ExecTs == exec_ts)
        )
    )
    return {(r.TaskId, r.Retry): r.Error for r in rows}


def insert_task_output(
    conn: Connection, dag_id: str, exec_ts: str, task_id: str, retry: int, value: str, now: str
) -> None:
    """Store the JSON value an attempt returned."""
    conn.execute(
        insert(dagruntaskoutputs).values(
            DagId=dag_id, ExecTs=exec_ts, TaskId=task_id, Retry=retry, InsertTs=now, Value=value
        )
    )


def read_task_outputs(conn: Connection, dag_id: str, exec_ts: str) -> dict[tuple[str, int], str]:
    """Return the JSON values a run's attempts returned, by ``(task_id, retry)``."""
    rows = conn.execute(
        select(dagruntaskoutputs.c.TaskId, dagruntaskoutputs.c.Retry, dagruntaskoutputs.c.Value)
        .where(dagruntaskoutputs.c.DagId == dag_id)
        .where(dagruntaskoutputs.c.ExecTs == exec_ts)
    )
    return {(r.TaskId, r.Retry): r.Value for r in rows}


def count_tasks_by_status(conn: Connection) -> dict[str, int]:
    """Return the number of task attempts per status."""
    rows = conn.execute(select(dagruntasks.c.Status, func.count()).group_by(dagruntasks.c.Status))
    return {status: count for status, count in rows}


def count_tasks_by_run(conn: Connection, run_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Per run, how many tasks are in each status (the latest attempt of each task).

    Every attempt of the runs is read once (``dagruns`` key, then a
    ``pk_dagruntasks`` range) and kept when a probe of the same index finds no
    later retry: about a third cheaper for a page of 1,000 runs than grouping
    the attempts into a temporary table and joining it back.
    """
    if not run_ids:
        return {}
    later = dagruntasks.alias("later")
    has_later_retry = exists().where(
        later.c.DagId == dagruntasks.c.DagId,
        later.c.ExecTs == dagruntasks.c.ExecTs,
        later.c.TaskId == dagruntasks.c.TaskId,
        later.c.Retry > dagruntasks.c.Retry,
    )
    rows = conn.execute(
        select(dagruns.c.RunId, dagruntasks.c.Status, func.count())
        .select_from(
            dagruns.join(
                dagruntasks,
                and_(
                    dagruntasks.c.DagId == dagruns.c.DagId,
                    dagruntasks.c.ExecTs == dagruns.c.ExecTs,
                ),
            )
        )
        .where(dagruns.c.RunId.in_(run_ids), ~has_later_retry)
        .group_by(dagruns.c.RunId, dagruntasks.c.Status)
    )
    out: dict[int, dict[str, int]] = {}
    for run_id, status, count in rows:
        out.setdefault(run_id, {})[status] = count
    return out


def read_task_attempts(
    conn: Connection, dag_id: str, exec_ts: str, task_id: str
) -> list[DagRunTaskRow]:
    """Every attempt of one task in one run, oldest first (served by the primary key)."""
    rows = conn.execute(
        _WITH_START.where(
            and_(
                dagruntasks.c.DagId == dag_id,
                dagruntasks.c.ExecTs == exec_ts,
                dagruntasks.c.TaskId == task_id,
            )
        ).order_by(dagruntasks.c.Retry)
    )
    return [_row(r) for r in rows]


@dataclass(frozen=True, slots=True)
class RunningAttempt:
    """A task attempt that is RUNNING now, with the id of its run."""

    run_id: int
    dag_id: str
    exec_ts: str
    task_id: str
    retry: int
    # When it started running (its last status change).
    since_ts: str


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """A FAILED task attempt of a run, with its stored error (if any)."""

    run_id: int
    task_id: str
    retry: int
    status_update_ts: str
    error: str | None


def read_running_attempts(conn: Connection, limit: int) -> tuple[list[RunningAttempt], int]:
    """Task attempts RUNNING now, longest running first (at most ``limit``), and their count."""
    join = dagruntasks.join(
        dagruns,
        and_(dagruns.c.DagId == dagruntasks.c.DagId, dagruns.c.ExecTs == dagruntasks.c.ExecTs),
    )
    running = dagruntasks.c.Status == str(TaskStatus.RUNNING)
    rows = conn.execute(
        select(
            dagruns.c.RunId,
            dagruntasks.c.DagId,
            dagruntasks.c.ExecTs,
            dagruntasks.c.TaskId,
            dagruntasks.c.Retry,
            dagruntasks.c.StatusUpdateTs,
        )
        .select_from(join)
        .where(running)
        .order_by(dagruntasks.c.StatusUpdateTs)
        .limit(limit)
    )
    attempts = [
        RunningAttempt(r.RunId, r.DagId, r.ExecTs, r.TaskId, r.Retry, r.StatusUpdateTs)
        for r in rows
    ]
    total = int(
        conn.execute(select(func.count()).select_from(dagruntasks).where(running)).scalar() or 0
    )
    return attempts, total


def read_failed_attempts(conn: Connection, runs: Sequence[DagRunRow]) -> list[FailedAttempt]:
    """The FAILED attempts of ``runs`` with their errors, in the order of ``runs``."""
    out: list[FailedAttempt] = []
    for run in runs:
        rows = conn.execute(
            select(
                dagruntasks.c.TaskId,
                dagruntasks.c.Retry,
                dagruntasks.c.StatusUpdateTs,
                dagruntaskerrors.c.Error,
            )
            .select_from(
                dagruntasks.outerjoin(
                    dagruntaskerrors,
                    and_(
                        dagruntaskerrors.c.DagId == dagruntasks.c.DagId,
                        dagruntaskerrors.c.ExecTs == dagruntasks.c.ExecTs,
                        dagruntaskerrors.c.TaskId == dagruntasks.c.TaskId,
                        dagruntaskerrors.c.Retry == dagruntasks.c.Retry,
                    ),
                )
            )
            .where(
                and_(
                    dagruntasks.c.DagId == run.dag_id,
                    dagruntasks.c.ExecTs == run.exec_ts,
                    dagruntasks.c.Status == str(TaskStatus.FAILED),
                )
            )
            .order_by(dagruntasks.c.StatusUpdateTs)
        )
        out.extend(
            FailedAttempt(run.run_id, r.TaskId, r.Retry, r.StatusUpdateTs, r.Error) for r in rows
        )
    return out


class AttemptTimes(NamedTuple):
    """What the DAG page's grid and duration chart need of an attempt: its times and status."""

    task_id: str
    retry: int
    status: str
    # When it was queued, when its status last changed, when an executor took it (or None).
    insert_ts: str
    status_update_ts: str
    start_ts: str | None


def read_attempts_of_runs(
    conn: Connection, dag_id: str, exec_ts: Sequence[str]
) -> dict[str, list[AttemptTimes]]:
    """The times and status of every attempt of some runs of one DAG, by the run's
    ``ExecTs``, each run's in task and retry order.

    One range of the primary key ``(DagId, ExecTs, ...)`` per run, and the starts
    by theirs; only the columns the grid needs, as plain tuples: a page of the
    DAG page's grid (100 runs of 50 tasks) is one statement of 5,000 rows.
    """
    out: dict[str, list[AttemptTimes]] = {ts: [] for ts in exec_ts}
    if not exec_ts:
        return out
    rows = conn.execute(
        _ATTEMPT_TIMES.where(
            and_(dagruntasks.c.DagId == dag_id, dagruntasks.c.ExecTs.in_(list(exec_ts)))
        ).order_by(dagruntasks.c.ExecTs, dagruntasks.c.TaskId, dagruntasks.c.Retry)
    )
    for r in rows:
        out[r[0]].append(AttemptTimes(r[1], r[2], r[3], r[4], r[5], r[6]))
    return out


_ATTEMPT_TIMES = _WITH_START.with_only_columns(
    dagruntasks.c.ExecTs,
    dagruntasks.c.TaskId,
    dagruntasks.c.Retry,
    dagruntasks.c.Status,
    dagruntasks.c.InsertTs,
    dagruntasks.c.StatusUpdateTs,
    dagruntaskstarts.c.StartTs,
    maintain_column_froms=True,
)
