"""Task logs: a logging handler writing task attempts' records to the logs DB, and a reader."""

from __future__ import annotations

import json
import logging
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, select

from ppacer.dag.task import TaskLogger
from ppacer.db.schema import tasklogs
from ppacer.timeutils import format_ts

__all__ = ["TaskLogHandler", "TaskLogRecord", "read_task_logs", "task_logger"]


@dataclass(frozen=True, slots=True)
class TaskLogRecord:
    """One stored log record of a task attempt."""

    insert_ts: str
    level: str
    message: str
    attributes: dict[str, Any]


class TaskLogHandler(logging.Handler):
    """Writes records that carry a task attempt's identity to ``tasklogs``.

    A failure to write is reported through :meth:`handleError` and never
    reaches the task.
    """

    def __init__(self, engine: Engine, level: int = logging.DEBUG) -> None:
        super().__init__(level)
        self.engine = engine

    def emit(self, record: logging.LogRecord) -> None:
        """Store ``record`` if it belongs to a task attempt."""
        dag_id = getattr(record, "ppacer_dag_id", None)
        if dag_id is None:
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            attrs = getattr(record, "ppacer_attrs", None) or {}
            row = {
                "DagId": dag_id,
                "ExecTs": record.ppacer_exec_ts,  # type: ignore[attr-defined]
                "TaskId": record.ppacer_task_id,  # type: ignore[attr-defined]
                "Retry": record.ppacer_retry,  # type: ignore[attr-defined]
                "InsertTs": format_ts(datetime.fromtimestamp(record.created, UTC)),
                "Level": record.levelname,
                "Message": message,
                "Attributes": json.dumps(attrs, default=str),
            }
            with self.engine.begin() as conn:
                conn.execute(insert(tasklogs).values(**row))
        except Exception:
            self.handleError(record)


def task_logger(
    base: logging.Logger,
    dag_id: str,
    exec_ts: str,
    task_id: str,
    retry: int,
    run_id: int | None = None,
) -> logging.LoggerAdapter[logging.Logger]:
    """Return the logger a task attempt writes to (records carry the attempt's identity)."""
    return TaskLogger(
        base,
        {
            "ppacer_dag_id": dag_id,
            "ppacer_exec_ts": exec_ts,
            "ppacer_task_id": task_id,
            "ppacer_retry": retry,
            "ppacer_run_id": run_id,
        },
    )


def read_task_logs(
    conn: Connection, dag_id: str, exec_ts: str, task_id: str, retry: int
) -> list[TaskLogRecord]:
    """Return a task attempt's log records in the order they were written."""
    rows = conn.execute(
        select(tasklogs.c.InsertTs, tasklogs.c.Level, tasklogs.c.Message, tasklogs.c.Attributes)
        .where(
            and_(
                tasklogs.c.DagId == dag_id,
                tasklogs.c.ExecTs == exec_ts,
                tasklogs.c.TaskId == task_id,
                tasklogs.c.Retry == retry,
            )
        )
        .order_by(tasklogs.c.InsertTs)
    )
    return [
        TaskLogRecord(r.InsertTs, r.Level, r.Message, json.loads(r.Attributes or "{}"))
        for r in rows
    ]
