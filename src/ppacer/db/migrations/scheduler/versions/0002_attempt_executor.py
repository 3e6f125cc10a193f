"""Which executor ran an attempt, when it really started, and the code it ran.

Adds the table ``dagruntaskstarts`` - per attempt an executor took: when
(``dagruntasks.InsertTs`` stays the time it was queued, so a duration splits
into queue wait and run time), which executor, and the code version it ran -
and ``dagtasks.CodeVersion``. ``dagruntasks`` keeps the original ppacer's
columns, so its documented queries read as they did. Attempts from before have
no start row (not recorded then). No table is copied, on SQLite either.

Revision ID: 0002_attempt_executor
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_attempt_executor"
down_revision: str | None = "0001_baseline"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the columns (NULL in existing rows)."""
    op.add_column(
        "dagtasks",
        sa.Column(
            "CodeVersion",
            sa.Text(),
            nullable=True,
            comment="what an executor must have to run the task: hash of the source and the "
            "explicit task and DAG versions (NULL for rows stored before ppacer recorded it)",
        ),
    )
    op.create_table(
        "dagruntaskstarts",
        sa.Column("DagId", sa.Text(), nullable=False, comment="DAG id"),
        sa.Column("ExecTs", sa.Text(), nullable=False, comment="the run's ExecTs"),
        sa.Column("TaskId", sa.Text(), nullable=False, comment="task id"),
        sa.Column("Retry", sa.Integer(), nullable=False, comment="attempt number"),
        sa.Column(
            "StartTs",
            sa.Text(),
            nullable=False,
            comment="when an executor took the attempt (dagruntasks.InsertTs: when it was queued)",
        ),
        sa.Column(
            "Executor",
            sa.Text(),
            nullable=True,
            comment="the executor that took it (NULL: a client that did not name itself)",
        ),
        sa.Column(
            "CodeVersion",
            sa.Text(),
            nullable=True,
            comment="the task's code version it ran (NULL: unknown, an executor that announced "
            "no versions)",
        ),
        sa.PrimaryKeyConstraint("DagId", "ExecTs", "TaskId", "Retry", name="pk_dagruntaskstarts"),
    )


def downgrade() -> None:
    """Downgrades are not provided."""
    raise NotImplementedError("ppacer databases are only moved forward")
