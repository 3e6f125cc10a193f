"""Baseline: the logs DB as ppacer wrote it before migrations (commit ca465ca).

A database made by that ppacer has these tables and no version table;
:mod:`ppacer.db.migrate` recognises it and stamps this revision. A new
database is created by this revision and those after it. The tables are a
frozen copy: later changes go in later revisions, never here.

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import (
    Column,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
)

revision = "0001_baseline"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

snapshot = MetaData()

tasklogs = Table(
    "tasklogs",
    snapshot,
    Column("DagId", Text, nullable=False, comment="DAG id"),
    Column("ExecTs", Text, nullable=False, comment="the run's ExecTs"),
    Column("TaskId", Text, nullable=False, comment="task id"),
    Column("Retry", Integer, nullable=False, comment="attempt number"),
    Column("InsertTs", Text, nullable=False, comment="when the record was logged"),
    Column("Level", Text, nullable=False, comment="INFO, WARNING, ERROR, ..."),
    Column("Message", Text, nullable=False, comment="the formatted message"),
    Column("Attributes", Text, nullable=False, comment="JSON of the record's extra attributes"),
    # No key on InsertTs: records in the same microsecond never collide (rowid orders them).
    Index("ix_tasklogs_attempt", "DagId", "ExecTs", "TaskId", "Retry"),
)


def upgrade() -> None:
    """Create the tables of ca465ca."""
    snapshot.create_all(op.get_bind())


def downgrade() -> None:
    """Downgrades are not provided."""
    raise NotImplementedError("ppacer databases are only moved forward")
