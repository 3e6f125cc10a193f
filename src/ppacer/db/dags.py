"""The ``dags`` and ``dagtasks`` tables: syncing a registry with the database."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, and_, func, insert, select, update

from ppacer.dag.dag import Dag
from ppacer.dag.task import task_source, task_type_name
from ppacer.db.schema import dags, dagtasks
from ppacer.timeutils import format_ts

__all__ = [
    "SyncResult",
    "TaskRow",
    "read_current_tasks",
    "read_dag_ids",
    "read_task_source",
    "read_task_version_counts",
    "read_task_versions",
    "sync_dags",
]


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What a sync changed."""

    dags_inserted: int = 0
    dags_updated: int = 0
    tasks_inserted: int = 0
    tasks_retired: int = 0


@dataclass(frozen=True, slots=True)
class TaskRow:
    """One version of a task as stored in ``dagtasks``."""

    dag_id: str
    task_id: str
    is_current: bool
    insert_ts: str
    pos_depth: int
    pos_width: int
    version: str
    type_name: str
    config: str
    body_hash: str
    body_source: str
    # What an executor must have to run it (None: stored before ppacer recorded it).
    code_version: str | None = None


def _task_rows(dag: Dag, now: str, version: str) -> dict[str, dict[str, object]]:
    rows: dict[str, dict[str, object]] = {}
    for info in dag.tasks.values():
        source = task_source(info.task)
        rows[info.task_id] = {
            "DagId": dag.id,
            "TaskId": info.task_id,
            "IsCurrent": 1,
            "InsertTs": now,
            "PosDepth": info.depth,
            "PosWidth": info.width,
            "Version": version,
            "TaskTypeName": task_type_name(info.task),
            "TaskConfig": info.config.to_json(),
            "TaskBodyHash": hashlib.sha256(source.encode()).hexdigest(),
            "TaskBodySource": source,
            "CodeVersion": info.code_version,
        }
    return rows


_COMPARED = ("PosDepth", "PosWidth", "TaskTypeName", "TaskConfig", "TaskBodyHash")


def sync_dags(conn: Connection, registry: Iterable[Dag], now: str, version: str) -> SyncResult:
    """Bring ``dags``/``dagtasks`` in line with ``registry``, in the caller's transaction.

    Hashes decide: an unchanged DAG costs one comparison. A changed task gets a
    new current row and its old row becomes ``IsCurrent = 0``; a task that left
    the DAG is retired the same way.
    """
    existing = {
        r.DagId: r for r in conn.execute(select(dags.c.DagId, dags.c.HashDagMeta, dags.c.HashTasks))
    }
    inserted = updated = t_inserted = t_retired = 0
    for dag in registry:
        start = dag.start_ts()
        meta_values = {
            "StartTs": format_ts(start) if start is not None else None,
            "Schedule": str(dag.schedule) if dag.schedule is not None else None,
            "HashDagMeta": dag.hash_meta(),
            "HashTasks": dag.hash_tasks(),
            "Attributes": dag.attributes.to_json(),
        }
        row = existing.get(dag.id)
        if row is None:
            conn.execute(
                insert(dags).values(
                    DagId=dag.id,
                    CreateTs=now,
                    CreateVersion=version,
                    LatestUpdateTs=now,
                    LatestUpdateVersion=version,
                    **meta_values,
                )
            )
            new_rows = list(_task_rows(dag, now, version).values())
            if new_rows:
                conn.execute(insert(dagtasks), new_rows)
            inserted += 1
            t_inserted += len(new_rows)
            continue
        if (
            row.HashDagMeta == meta_values["HashDagMeta"]
            and row.HashTasks == meta_values["HashTasks"]
        ):
            continue
        conn.execute(
            update(dags)
            .where(dags.c.DagId == dag.id)
            .values(LatestUpdateTs=now, LatestUpdateVersion=version, **meta_values)
        )
        updated += 1
        if row.HashTasks != meta_values["HashTasks"]:
            ins, ret = _sync_tasks(conn, dag, now, version)
            t_inserted += ins
            t_retired += ret
    return SyncResult(inserted, updated, t_inserted, t_retired)


def _sync_tasks(conn: Connection, dag: Dag, now: str, version: str) -> tuple[int, int]:
    current = {
        r.TaskId: r
        for r in conn.execute(
            select(dagtasks).where(and_(dagtasks.c.DagId == dag.id, dagtasks.c.IsCurrent == 1))
        )
    }
    wanted = _task_rows(dag, now, version)
    retire = [tid for tid in current if tid not in wanted]
    fresh = []
    for tid, values in wanted.items():
        old = current.get(tid)
        if (
            old is not None
            and all(getattr(old, col) == values[col] for col in _COMPARED)
            # Rows stored before code versions were recorded have none: not a change.
            and old.CodeVersion in (None, values["CodeVersion"])
        ):
            continue
        if old is not None:
            retire.append(tid)
        fresh.append(values)
    if retire:
        conn.execute(
            update(dagtasks)
            .where(
                and_(
                    dagtasks.c.DagId == dag.id,
                    dagtasks.c.TaskId.in_(retire),
                    dagtasks.c.IsCurrent == 1,
                )
            )
            .values(IsCurrent=0)
        )
    if fresh:
        conn.execute(insert(dagtasks), fresh)
    return len(fresh), len(retire)


def _task_row(r: object) -> TaskRow:
    return TaskRow(
        dag_id=r.DagId,  # type: ignore[attr-defined]
        task_id=r.TaskId,  # type: ignore[attr-defined]
        is_current=bool(r.IsCurrent),  # type: ignore[attr-defined]
        insert_ts=r.InsertTs,  # type: ignore[attr-defined]
        pos_depth=r.PosDepth,  # type: ignore[attr-defined]
        pos_width=r.PosWidth,  # type: ignore[attr-defined]
        version=r.Version,  # type: ignore[attr-defined]
        type_name=r.TaskTypeName,  # type: ignore[attr-defined]
        config=r.TaskConfig,  # type: ignore[attr-defined]
        body_hash=r.TaskBodyHash,  # type: ignore[attr-defined]
        body_source=r.TaskBodySource,  # type: ignore[attr-defined]
        code_version=r.CodeVersion,  # type: ignore[attr-defined]
    )


def read_current_tasks(conn: Connection, dag_id: str) -> list[TaskRow]:
    """Return the current version of each task of a DAG."""
    rows = conn.execute(
        select(dagtasks)
        .where(and_(dagtasks.c.DagId == dag_id, dagtasks.c.IsCurrent == 1))
        .order_by(dagtasks.c.PosDepth, dagtasks.c.PosWidth)
    )
    return [_task_row(r) for r in rows]


def read_task_source(conn: Connection, dag_id: str, task_id: str, at_ts: str) -> TaskRow | None:
    """Return the version of a task that was current at ``at_ts`` (or the oldest after it)."""
    base = select(dagtasks).where(and_(dagtasks.c.DagId == dag_id, dagtasks.c.TaskId == task_id))
    row = conn.execute(
        base.where(dagtasks.c.InsertTs <= at_ts).order_by(dagtasks.c.InsertTs.desc()).limit(1)
    ).first()
    if row is None:
        row = conn.execute(base.order_by(dagtasks.c.InsertTs).limit(1)).first()
    return _task_row(row) if row is not None else None


def read_task_versions(conn: Connection, dag_id: str, task_id: str, limit: int) -> list[TaskRow]:
    """The ``limit`` latest stored versions of a task, newest first (the current one first).

    ``ix_dagtasks_dag_task`` finds the task's rows; a task has few versions.
    """
    rows = conn.execute(
        select(dagtasks)
        .where(and_(dagtasks.c.DagId == dag_id, dagtasks.c.TaskId == task_id))
        .order_by(dagtasks.c.IsCurrent.desc(), dagtasks.c.InsertTs.desc())
        .limit(limit)
    )
    return [_task_row(r) for r in rows]


def read_task_version_counts(conn: Connection, dag_id: str) -> dict[str, tuple[int, str]]:
    """Per task of a DAG: how many versions are stored and when the latest was stored."""
    rows = conn.execute(
        select(dagtasks.c.TaskId, func.count(), func.max(dagtasks.c.InsertTs))
        .where(dagtasks.c.DagId == dag_id)
        .group_by(dagtasks.c.TaskId)
    )
    return {task_id: (int(n), str(latest)) for task_id, n, latest in rows}


def read_dag_ids(conn: Connection) -> list[str]:
    """Every DAG id ever synced (DAGs since removed from the code included), sorted."""
    return [r[0] for r in conn.execute(select(dags.c.DagId).order_by(dags.c.DagId))]
