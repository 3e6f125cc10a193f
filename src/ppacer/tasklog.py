"""A logging handler storing task attempts' records in the logs DB.

Task loggers (:func:`ppacer.dag.task.task_logger`) mark each record with its
attempt; the records are read back by :func:`ppacer.db.tasklogs.read_task_log_lines`.
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import UTC, datetime

from sqlalchemy import Engine

from ppacer.db.engine import open_logs_db
from ppacer.db.tasklogs import insert_task_logs
from ppacer.timeutils import format_ts

__all__ = ["TaskLogHandler", "open_log_handler"]


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
                insert_task_logs(conn, [row])
        except Exception:
            self.handleError(record)


def open_log_handler(target: str | Engine) -> TaskLogHandler:
    """A handler storing task log records in the logs DB at a path, URL or engine."""
    return TaskLogHandler(open_logs_db(target))
