"""How attempts started: ``dagruntasks.StartTs``, ``Executor`` and ``CodeVersion``.

When an executor really started an attempt (as opposed to when it was queued,
``InsertTs``), which executor it was, and the version of the task's code it
ran. Written by the same statement as the attempt's RUNNING status, or as its
final one when it finished before its RUNNING status was written: a hop costs
no statement more for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, update

from ppacer.dag.status import TaskStatus
from ppacer.db.prepared import Prepared
from ppacer.db.schema import dagruntasks

__all__ = ["ATTEMPT", "Started", "record_starts", "set_status_started"]

#: The attempt ``k_dag``, ``k_exec``, ``k_task``, ``k_retry`` (bind parameters).
ATTEMPT: ColumnElement[bool] = and_(
    dagruntasks.c.DagId == bindparam("k_dag"),
    dagruntasks.c.ExecTs == bindparam("k_exec"),
    dagruntasks.c.TaskId == bindparam("k_task"),
    dagruntasks.c.Retry == bindparam("k_retry"),
)


@dataclass(frozen=True, slots=True)
class Started:
    """How an attempt started: when it was handed out, to whom, with which code."""

    start_ts: str
    # None: a client that did not name itself.
    executor: str | None
    # None: an executor that announced no code versions.
    code_version: str | None


_START: dict[str, Any] = {
    "StartTs": bindparam("v_start"),
    "Executor": bindparam("v_executor"),
    "CodeVersion": bindparam("v_code"),
}
_SET_START = Prepared(update(dagruntasks).where(ATTEMPT).values(**_START))
_SET_STATUS_STARTED = Prepared(
    update(dagruntasks)
    .where(ATTEMPT)
    .values(Status=bindparam("v_status"), StatusUpdateTs=bindparam("v_ts"), **_START)
)


def _params(dag_id: str, exec_ts: str, task_id: str, retry: int, st: Started) -> dict[str, Any]:
    return {
        "k_dag": dag_id,
        "k_exec": exec_ts,
        "k_task": task_id,
        "k_retry": retry,
        "v_start": st.start_ts,
        "v_executor": st.executor,
        "v_code": st.code_version,
    }


def set_status_started(
    conn: Connection, changes: Sequence[tuple[str, str, str, int, TaskStatus, str, Started]]
) -> None:
    """Set attempts' statuses with how they started:
    ``(dag_id, exec_ts, task_id, retry, status, now, started)``."""
    _SET_STATUS_STARTED.executemany(
        conn,
        [
            {**_params(d, e, t, r, st), "v_status": str(status), "v_ts": now}
            for d, e, t, r, status, now, st in changes
        ],
    )


def record_starts(conn: Connection, starts: Sequence[tuple[str, str, str, int, Started]]) -> None:
    """Record how attempts started ``(dag_id, exec_ts, task_id, retry, started)``, their
    statuses as they are (an attempt taken back before its RUNNING status was written).

    An attempt handed out again (put back, given back after a restart) keeps its
    latest start.
    """
    _SET_START.executemany(conn, [_params(*start) for start in starts])
