"""How an attempt started, in its own row: ``dagruntasks.StartTs``, ``Executor``, ``CodeVersion``.

Revision 0002 kept these in a table beside ``dagruntasks`` (``dagruntaskstarts``),
which cost every task hop one statement more: an upsert into a second table,
measured as 5 % of the scheduler's CPU per task on SQLite (BENCHMARKS.md). They
become nullable columns of the attempt's own row, written by the same UPDATE
that writes its RUNNING (or, for an attempt that finished first, its final)
status. The rows of ``dagruntaskstarts`` are copied into them, the table is
dropped, and a view of that name (the attempts with a start, the same columns)
keeps queries written against it working. The original ppacer's columns of
``dagruntasks`` are unchanged; no table is rebuilt, on SQLite either.

Revision ID: 0005_attempt_start_columns
Revises: 0004_runs_by_exec
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_attempt_start_columns"
down_revision: str | None = "0004_runs_by_exec"
branch_labels: str | None = None
depends_on: str | None = None

_COLUMNS = (
    ("StartTs", "when an executor took the attempt (InsertTs: when it was queued); NULL: never"),
    ("Executor", "the executor that took it (NULL: never taken, or a client without a name)"),
    ("CodeVersion", "the task's code version it ran (NULL: unknown, or never taken)"),
)
_KEY = " AND ".join(f's."{c}" = dagruntasks."{c}"' for c in ("DagId", "ExecTs", "TaskId", "Retry"))


def upgrade() -> None:
    """Add the columns, copy the starts into them, replace the table by a view."""
    for name, comment in _COLUMNS:
        op.add_column("dagruntasks", sa.Column(name, sa.Text(), nullable=True, comment=comment))
    bind = op.get_bind()
    # UPDATE ... FROM: SQLite 3.33 and later, PostgreSQL.
    bind.exec_driver_sql(
        'UPDATE dagruntasks SET "StartTs" = s."StartTs", "Executor" = s."Executor", '
        f'"CodeVersion" = s."CodeVersion" FROM dagruntaskstarts AS s WHERE {_KEY}'
    )
    op.drop_table("dagruntaskstarts")
    bind.exec_driver_sql(
        'CREATE VIEW dagruntaskstarts AS SELECT "DagId", "ExecTs", "TaskId", "Retry", '
        '"StartTs", "Executor", "CodeVersion" FROM dagruntasks WHERE "StartTs" IS NOT NULL'
    )


def downgrade() -> None:
    """Downgrades are not provided."""
    raise NotImplementedError("ppacer databases are only moved forward")
