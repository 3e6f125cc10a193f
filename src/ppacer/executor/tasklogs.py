"""Where an executor's task logs go: shipped to the scheduler, to a handler, or to a logs DB.

By default they are shipped (:class:`~ppacer.executor.logship.LogShipper`):
the executor opens no database. A ``log_handler`` given instead receives
them (nothing is shipped); a ``logs_db`` given instead is written to
directly, as executors sharing the scheduler's logs DB did before shipping
existed (and as the original's executors still do). :class:`TaskLogs` hides
which: the executor calls :meth:`~TaskLogs.finish` before an attempt's final
report and :meth:`~TaskLogs.close` when it stops, whatever the destination.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ppacer.api.client import Client
from ppacer.api.models import TaskToExec
from ppacer.executor.logship import LogShipper, LogShipping, attempt_key
from ppacer.timeutils import monotonic

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["TaskLogs"]


class TaskLogs:
    """The task logger's destination, attached to ``logger`` until :meth:`close`."""

    def __init__(
        self,
        logger: logging.Logger,
        client: Client,
        executor: str,
        *,
        logs_db: str | Engine | None,
        log_handler: logging.Handler | None,
        shipping: LogShipping,
    ) -> None:
        if logs_db is not None and log_handler is not None:
            raise ValueError("give the executor logs_db or log_handler, not both")
        #: The log shipper, when task logs are shipped (neither logs_db nor log_handler given).
        self.shipper: LogShipper | None = None
        if logs_db is None and log_handler is None:
            self.shipper = LogShipper(client, executor, shipping)
            log_handler = self.shipper
        self._detach = _attach(logger, logs_db, log_handler)

    def continue_at(self, task: TaskToExec, next_seq: int) -> None:
        """Number the attempt's next shipped lines from ``next_seq`` (another process shipped
        the ones before)."""
        if self.shipper is not None:
            self.shipper.start_attempt(_key(task), next_seq)

    def finish(self, task: TaskToExec) -> None:
        """Before the attempt's final report: wait (bounded) until its lines are delivered.

        At once when they are not shipped, or when it logged nothing.
        """
        if self.shipper is not None:
            self.shipper.finish_attempt(_key(task))

    def close(self, deadline: float, *, deliver: bool = True) -> None:
        """Detach; ship what is queued until ``deadline`` (monotonic; at least 1 s) if
        ``deliver``, then stop shipping."""
        self._detach()
        if self.shipper is not None:
            if deliver:
                self.shipper.drain(max(1.0, deadline - monotonic()))
            self.shipper.shutdown()


def _key(task: TaskToExec) -> tuple[str, str, str, int]:
    return attempt_key(task.dag_id, task.exec_ts, task.task_id, task.retry)


def _attach(
    logger: logging.Logger, logs_db: str | Engine | None, handler: logging.Handler | None
) -> Callable[[], None]:
    """Attach the task-log handler; return what undoes it at stop (closing what it opened)."""
    if logs_db is None:
        if handler is None:
            return lambda: None
        given = handler
        logger.addHandler(given)
        # Records a task stuck past the stop logs from now on go to the console only.
        return lambda: logger.removeHandler(given)

    from ppacer.tasklog import open_log_handler  # opens a database: only when asked to

    opened = open_log_handler(logs_db)
    logger.addHandler(opened)

    def close() -> None:
        logger.removeHandler(opened)
        opened.close()
        if isinstance(logs_db, str):  # an engine passed in is the caller's to dispose
            opened.engine.dispose()

    return close
