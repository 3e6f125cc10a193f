"""How attempts started: ``dagruntaskstarts``, one row per attempt an executor took.

When an executor really started an attempt (as opposed to when it was queued),
which executor it was, and the version of the task's code it ran. Written with
the attempt's RUNNING status, or with its final one when it finished first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from ppacer.db.prepared import Prepared
from ppacer.db.schema import dagruntaskstarts

__all__ = ["Started", "insert_task_starts"]


@dataclass(frozen=True, slots=True)
class Started:
    """How an attempt started: when it was handed out, to whom, with which code."""

    start_ts: str
    # None: a client that did not name itself.
    executor: str | None
    # None: an executor that announced no code versions.
    code_version: str | None


def insert_task_starts(
    conn: Connection, starts: Sequence[tuple[str, str, str, int, Started]]
) -> None:
    """Record how attempts started ``(dag_id, exec_ts, task_id, retry, started)``.

    An attempt handed out again (put back, given back after a restart) keeps its
    latest start.
    """
    if not starts:
        return
    rows = [
        {
            "DagId": d,
            "ExecTs": e,
            "TaskId": t,
            "Retry": r,
            "StartTs": st.start_ts,
            "Executor": st.executor,
            "CodeVersion": st.code_version,
        }
        for d, e, t, r, st in starts
    ]
    _upsert_starts(conn.dialect.name).executemany(conn, rows)


# The upsert of attempt starts per dialect, built once: building it per call (its
# ``excluded`` columns) cost a seventh of the scheduler's time on a chain's hop.
_UPSERT_STARTS: dict[str, Prepared] = {}


def _upsert_starts(dialect: str) -> Prepared:
    statement = _UPSERT_STARTS.get(dialect)
    if statement is None:
        # Imported here: the dialect of the database in use only.
        base: Any
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            base = pg_insert(dagruntaskstarts)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            base = sqlite_insert(dagruntaskstarts)
        statement = _UPSERT_STARTS[dialect] = Prepared(
            base.on_conflict_do_update(
                index_elements=["DagId", "ExecTs", "TaskId", "Retry"],
                set_={
                    "StartTs": base.excluded.StartTs,
                    "Executor": base.excluded.Executor,
                    "CodeVersion": base.excluded.CodeVersion,
                },
            )
        )
    return statement
