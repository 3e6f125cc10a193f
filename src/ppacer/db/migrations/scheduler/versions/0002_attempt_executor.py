"""Which executor ran an attempt, when it really started, and the code it ran.

Adds ``dagruntasks.StartTs`` (``InsertTs`` stays the time it was queued, so a
duration splits into queue wait and run time), ``dagruntasks.Executor``,
``dagruntasks.CodeVersion`` and ``dagtasks.CodeVersion``. Existing rows keep
NULL in them (not recorded then). Plain ``ADD COLUMN``s: no table is copied, on
SQLite either.

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
    op.add_column(
        "dagruntasks",
        sa.Column(
            "StartTs",
            sa.Text(),
            nullable=True,
            comment="when an executor took the attempt (InsertTs: when it was queued); NULL: "
            "never handed out",
        ),
    )
    op.add_column(
        "dagruntasks",
        sa.Column(
            "Executor",
            sa.Text(),
            nullable=True,
            comment="the executor that ran the attempt (NULL: not handed out, or a client that "
            "did not name itself)",
        ),
    )
    op.add_column(
        "dagruntasks",
        sa.Column(
            "CodeVersion",
            sa.Text(),
            nullable=True,
            comment="the task's code version the attempt ran (NULL: unknown, an executor that "
            "announced no versions)",
        ),
    )


def downgrade() -> None:
    """Downgrades are not provided."""
    raise NotImplementedError("ppacer databases are only moved forward")
