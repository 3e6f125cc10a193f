"""The logs DB's ``tasklogs`` table: the one writer and the one reader of task log records.

Records of an attempt are read in the order they were written: by time, then
(SQLite) by rowid, so records of the same microsecond keep their order. A run
is matched whatever timestamp text the writer used: ours, or the original Go
executor's (trailing fraction zeros trimmed, see :mod:`ppacer.gotime`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, insert, literal_column, select

from ppacer.db.schema import tasklogs
from ppacer.gotime import timestamp_forms

__all__ = ["TaskLogLine", "insert_shipped_logs", "insert_task_logs", "read_task_log_lines"]


@dataclass(frozen=True, slots=True)
class TaskLogLine:
    """One stored log record of a task attempt."""

    insert_ts: str
    level: str
    message: str
    attributes: dict[str, Any]


def insert_task_logs(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Store log records (rows keyed by the table's column names)."""
    if rows:
        conn.execute(insert(tasklogs), list(rows))


def insert_shipped_logs(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Store records shipped by executors (each with its ``Seq``); return how many were new.

    A record whose attempt and ``Seq`` are stored already is a re-sent copy and is
    skipped: delivered at least once, stored exactly once.
    """
    if not rows:
        return 0
    # The dialect's module is imported here, for the database in use only: the
    # PostgreSQL one alone costs ~20 ms and some MiB of a SQLite start.
    statement: Any
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement = pg_insert(tasklogs).on_conflict_do_nothing()
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(tasklogs).on_conflict_do_nothing()
    return max(0, conn.execute(statement, list(rows)).rowcount)


def read_task_log_lines(
    conn: Connection,
    dag_id: str,
    exec_ts: str,
    task_id: str,
    retry: int,
    *,
    offset: int = 0,
    limit: int = 1000,
) -> list[TaskLogLine]:
    """Log records of one task attempt in the order they were written, from ``offset`` on.

    Live tails ask again with ``offset`` = the number of records they have shown.
    """
    # Shipped records by their number (NULL for rows written straight into the table).
    order: list[Any] = [tasklogs.c.Seq, tasklogs.c.InsertTs]
    if conn.dialect.name == "sqlite":
        # Records of the same microsecond keep their insertion order.
        order.append(literal_column("rowid"))
    rows = conn.execute(
        select(tasklogs.c.InsertTs, tasklogs.c.Level, tasklogs.c.Message, tasklogs.c.Attributes)
        .where(
            and_(
                tasklogs.c.DagId == dag_id,
                tasklogs.c.ExecTs.in_(timestamp_forms(exec_ts)),
                tasklogs.c.TaskId == task_id,
                tasklogs.c.Retry == retry,
            )
        )
        .order_by(*order)
        .offset(offset)
        .limit(limit)
    )
    return [TaskLogLine(r.InsertTs, r.Level, r.Message, _attrs(r.Attributes)) for r in rows]


def _attrs(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {"raw": text}
    return value if isinstance(value, dict) else {"value": value}
