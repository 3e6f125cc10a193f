"""What users do to DAGs and runs: pauses, the run history of actions, and backfills."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, and_, insert, select, update

from ppacer.db.schema import backfillruns, backfills, dagpauses, dagrunevents

__all__ = [
    "BackfillRow",
    "RunEventRow",
    "insert_backfill",
    "insert_backfill_run",
    "insert_run_event",
    "read_active_backfills",
    "read_backfill",
    "read_backfill_run_ids",
    "read_pause_resume_ts",
    "read_paused_dags",
    "read_run_events",
    "set_dag_paused",
    "update_backfill",
]


def read_paused_dags(conn: Connection) -> set[str]:
    """Ids of the paused DAGs."""
    return {
        r.DagId for r in conn.execute(select(dagpauses.c.DagId).where(dagpauses.c.IsPaused == 1))
    }


def set_dag_paused(
    conn: Connection,
    dag_id: str,
    paused: bool,
    now: str,
    actor: str,
    resume_ts: str | None = None,
) -> None:
    """Pause or unpause a DAG (persisted), remembering where its schedule stood."""
    values: dict[str, object] = {"IsPaused": int(paused), "UpdateTs": now, "UpdatedBy": actor}
    if paused:
        values["ResumeTs"] = resume_ts
    changed = conn.execute(update(dagpauses).where(dagpauses.c.DagId == dag_id).values(**values))
    if changed.rowcount == 0:
        conn.execute(insert(dagpauses).values(DagId=dag_id, **values))


def read_pause_resume_ts(conn: Connection, dag_id: str) -> str | None:
    """The DAG's next point when it was paused, if recorded."""
    found = conn.execute(select(dagpauses.c.ResumeTs).where(dagpauses.c.DagId == dag_id)).scalar()
    return str(found) if found is not None else None


@dataclass(frozen=True, slots=True)
class RunEventRow:
    """One action on a run, from ``dagrunevents``."""

    run_id: int
    insert_ts: str
    action: str
    task_id: str | None
    actor: str
    detail: dict[str, Any]


def insert_run_event(
    conn: Connection,
    run_id: int,
    action: str,
    now: str,
    actor: str,
    task_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record an action on a run (who and when)."""
    conn.execute(
        insert(dagrunevents).values(
            RunId=run_id,
            InsertTs=now,
            Action=action,
            TaskId=task_id,
            Actor=actor,
            Detail=json.dumps(detail or {}, default=str),
        )
    )


def read_run_events(conn: Connection, run_id: int) -> list[RunEventRow]:
    """A run's history of actions, oldest first."""
    rows = conn.execute(
        select(dagrunevents).where(dagrunevents.c.RunId == run_id).order_by(dagrunevents.c.InsertTs)
    )
    return [
        RunEventRow(r.RunId, r.InsertTs, r.Action, r.TaskId, r.Actor, json.loads(r.Detail))
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class BackfillRow:
    """A ``backfills`` row."""

    backfill_id: int
    dag_id: str
    from_ts: str
    to_ts: str
    max_active_runs: int
    next_ts: str | None
    status: str
    insert_ts: str
    update_ts: str
    actor: str


def _backfill(r: Row[Any]) -> BackfillRow:
    return BackfillRow(
        r.BackfillId,
        r.DagId,
        r.FromTs,
        r.ToTs,
        r.MaxActiveRuns,
        r.NextTs,
        r.Status,
        r.InsertTs,
        r.UpdateTs,
        r.Actor,
    )


def insert_backfill(
    conn: Connection,
    dag_id: str,
    from_ts: str,
    to_ts: str,
    max_active_runs: int,
    next_ts: str | None,
    now: str,
    actor: str,
) -> int:
    """Record a requested backfill; return its id."""
    result = conn.execute(
        insert(backfills).values(
            DagId=dag_id,
            FromTs=from_ts,
            ToTs=to_ts,
            MaxActiveRuns=max_active_runs,
            NextTs=next_ts,
            Status="RUNNING",
            InsertTs=now,
            UpdateTs=now,
            Actor=actor,
        )
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


def update_backfill(
    conn: Connection, backfill_id: int, now: str, *, next_ts: str | None, status: str
) -> None:
    """Move a backfill on: its next point and status."""
    conn.execute(
        update(backfills)
        .where(backfills.c.BackfillId == backfill_id)
        .values(NextTs=next_ts, Status=status, UpdateTs=now)
    )


def read_backfill(conn: Connection, backfill_id: int) -> BackfillRow | None:
    """One backfill, or None."""
    row = conn.execute(select(backfills).where(backfills.c.BackfillId == backfill_id)).first()
    return _backfill(row) if row is not None else None


def read_active_backfills(conn: Connection) -> list[BackfillRow]:
    """Backfills still RUNNING, oldest first."""
    rows = conn.execute(
        select(backfills).where(backfills.c.Status == "RUNNING").order_by(backfills.c.BackfillId)
    )
    return [_backfill(r) for r in rows]


def insert_backfill_run(conn: Connection, backfill_id: int, run_id: int) -> None:
    """Link a run to the backfill that created it."""
    conn.execute(insert(backfillruns).values(BackfillId=backfill_id, RunId=run_id))


def read_backfill_run_ids(conn: Connection, backfill_id: int) -> list[int]:
    """Runs a backfill created, in order."""
    rows = conn.execute(
        select(backfillruns.c.RunId)
        .where(and_(backfillruns.c.BackfillId == backfill_id))
        .order_by(backfillruns.c.RunId)
    )
    return [r.RunId for r in rows]
