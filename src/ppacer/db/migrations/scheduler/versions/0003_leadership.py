"""Leadership of the database's schedulers, and the secret lease tokens derive from.

Adds ``schedulerleader``, one row: who leads (PostgreSQL: any number of
schedulers, one leads; SQLite: one scheduler), the fencing epoch, the lease's
expiry by the database's clock, the leader's URL and code hash, and the secret
every scheduler derives lease tokens from, made here once per database.

Revision ID: 0003_leadership
Revises: 0002_attempt_executor
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0003_leadership"
down_revision: str | None = "0002_attempt_executor"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the table and its one row (nobody leads, epoch 0, a new secret)."""
    table = op.create_table(
        "schedulerleader",
        sa.Column(
            "Id", sa.Integer(), primary_key=True, autoincrement=False, comment="always 1: one row"
        ),
        sa.Column(
            "Holder",
            sa.Text(),
            nullable=True,
            comment="the leading scheduler (host:pid); NULL: none",
        ),
        sa.Column(
            "Epoch",
            sa.BigInteger(),
            nullable=False,
            comment="incremented at each acquisition; the leader's writes check it (fencing)",
        ),
        sa.Column(
            "LeaseUntil",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="when the leadership lapses unless renewed, by the database's clock",
        ),
        sa.Column(
            "Url", sa.Text(), nullable=True, comment="the leader's API, for standbys to proxy to"
        ),
        sa.Column("CodeHash", sa.Text(), nullable=True, comment="hash of the leader's DAG code"),
        sa.Column(
            "Secret",
            sa.Text(),
            nullable=False,
            comment="hex secret lease tokens are derived from (the same for every scheduler)",
        ),
        sa.Column("UpdateTs", sa.Text(), nullable=True, comment="when the row last changed"),
    )
    op.bulk_insert(table, [{"Id": 1, "Epoch": 0, "Secret": secrets.token_hex(32)}])


def downgrade() -> None:
    """Downgrades are not provided."""
    raise NotImplementedError("ppacer databases are only moved forward")
