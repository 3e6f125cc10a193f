"""Task log records shipped by executors over the API carry a per-attempt sequence number.

Adds ``tasklogs.Seq`` (NULL for rows written before, and for rows a logging
handler writes straight into the table) and a unique index on the attempt and
``Seq``, so a record re-sent after a lost answer is stored once.

Revision ID: 0002_log_seq
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_log_seq"
down_revision: str | None = "0001_baseline"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the column and its unique index (existing rows keep a NULL Seq)."""
    with op.batch_alter_table("tasklogs") as batch:
        batch.add_column(
            sa.Column(
                "Seq",
                sa.Integer(),
                nullable=True,
                comment="the record's number within its attempt, from 0, for records shipped by "
                "executors over the API (stored once: a re-sent record is a duplicate); NULL for "
                "records a logging handler wrote straight into this table",
            )
        )
    op.create_index(
        "uq_tasklogs_attempt_seq",
        "tasklogs",
        ["DagId", "ExecTs", "TaskId", "Retry", "Seq"],
        unique=True,
    )


def downgrade() -> None:
    """Downgrades are not provided."""
    raise NotImplementedError("ppacer databases are only moved forward")
