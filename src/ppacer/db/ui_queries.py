"""Reads behind the web UI's pages: run lists, recent runs per DAG, running tasks, failures, logs.

Every query is bounded (a ``LIMIT``, or a list of ids) and served by an index:
``dagruns`` by ``RunId`` (the key), ``Status`` (``ix_dagruns_status``) or
``(DagId, ExecTs)`` (``uq_dagruns_dag_exec``); ``dagruntasks`` by its key
``(DagId, ExecTs, ...)`` or ``Status`` (``ix_dagruntasks_status``); task logs by
``ix_tasklogs_attempt``. So a page costs the same with 1,000 runs or 1,000,000.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, select

from ppacer.dag.status import DagRunStatus, TaskStatus
from ppacer.db.dagruns import DagRunRow
from ppacer.db.schema import dagruns, dagruntaskerrors, dagruntasks

__all__ = [
    "FailedAttempt",
    "RunningAttempt",
    "read_failed_attempts",
    "read_recent_runs_by_dag",
    "read_running_attempts",
    "read_runs_page",
]


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


def _run(r: Any) -> DagRunRow:
    return DagRunRow(
        r.RunId, r.DagId, r.ExecTs, r.InsertTs, DagRunStatus(r.Status), r.StatusUpdateTs, r.Version
    )


def read_runs_page(
    conn: Connection,
    *,
    dag_id: str | None = None,
    statuses: Collection[DagRunStatus] = (),
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[DagRunRow], int]:
    """One page of runs, newest first, optionally of one DAG and some statuses; and the total."""
    where = []
    if dag_id is not None:
        where.append(dagruns.c.DagId == dag_id)
    if statuses:
        where.append(dagruns.c.Status.in_([str(s) for s in statuses]))
    cond = and_(*where) if where else None
    page = select(dagruns).order_by(dagruns.c.RunId.desc()).limit(limit).offset(offset)
    count = select(func.count()).select_from(dagruns)
    if cond is not None:
        page = page.where(cond)
        count = count.where(cond)
    rows = [_run(r) for r in conn.execute(page)]
    total = int(conn.execute(count).scalar() or 0)
    return rows, total


def read_recent_runs_by_dag(
    conn: Connection, dag_ids: Sequence[str], per_dag: int
) -> dict[str, list[DagRunRow]]:
    """The ``per_dag`` latest runs (by logical time) of each DAG, newest first.

    One index range scan of ``uq_dagruns_dag_exec`` per DAG, backwards.
    """
    out: dict[str, list[DagRunRow]] = {dag_id: [] for dag_id in dag_ids}
    for dag_id in dag_ids:
        rows = conn.execute(
            select(dagruns)
            .where(dagruns.c.DagId == dag_id)
            .order_by(dagruns.c.ExecTs.desc())
            .limit(per_dag)
        )
        out[dag_id] = [_run(r) for r in rows]
    return out


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
