"""Full-text search over task logs: an FTS5 index on SQLite, GIN on a stored vector on PostgreSQL.

**SQLite**: ``tasklogs_fts``, an external-content FTS5 table over
``tasklogs.Message`` (the text is not stored twice: the index points at
``tasklogs`` rows by rowid), kept in sync by three triggers, so a row
deleted from ``tasklogs`` (retention) leaves the index with it. Existing rows
are indexed by a ``rebuild``. Tokens are runs of letters and digits, case
folded, accents kept (``remove_diacritics 0``), as on PostgreSQL below.

**PostgreSQL**: ``tasklogs.MessageWords``, a stored generated ``tsvector``
column: the ``simple`` text-search vector of the message with every run of
non-alphanumeric characters made a space (so ``db.example.com`` and
``/tmp/data.csv`` are words as on SQLite, not one host or file token), over the
first 32,768 characters (a longer message is stored whole; only its head is
searchable: bounds the vector far below PostgreSQL's 1 MB limit, so no insert
can fail on it); ``ix_tasklogs_message_fts``, a GIN index on it; and
``ix_tasklogs_insert_ts`` on ``InsertTs``, by which :mod:`ppacer.db.logsearch`
reads newest first. Stored, not an expression index: phrases are checked
against each candidate row (GIN keeps no word positions), and recomputing the
vector costs ~25 us a row there, reading it ~1 us (measured over 1,000,000
lines, ``benchmarks/log_search.py``: a phrase 326 ms with an expression index,
26 ms with the stored vector; the vectors take ~120 MB). Adding the column
rewrites ``tasklogs`` once, under its lock (~20 s per million rows here).

The statements are in :mod:`ppacer.db.search_ddl` (a new database made at the head
runs them too). These objects are not in the models (:mod:`ppacer.db.schema`):
:func:`ppacer.db.migrate.schema_drift` ignores them by name. A later revision
that rebuilds ``tasklogs`` on SQLite (a batch copy renumbers rowids and drops
triggers) must create the triggers again and ``rebuild`` the index.

Revision ID: 0003_log_search
Revises: 0002_log_seq
"""

from __future__ import annotations

from alembic import op

from ppacer.db.search_ddl import statements

revision = "0003_log_search"
down_revision: str | None = "0002_log_seq"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the index (and, on SQLite, its triggers) and index the rows already there."""
    bind = op.get_bind()
    for statement in statements(bind.dialect.name):
        bind.exec_driver_sql(statement)


def downgrade() -> None:
    """Downgrades are not provided."""
    raise NotImplementedError("ppacer databases are only moved forward")
