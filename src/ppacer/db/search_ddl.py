"""The logs DB's full-text search objects, as revision ``0003_log_search`` creates them.

Not in the models (:mod:`ppacer.db.schema`): an FTS5 table and its triggers on
SQLite, a generated ``tsvector`` column and its indexes on PostgreSQL (the
revision's docstring explains each choice). Used by that revision and by
:mod:`ppacer.db.fresh`, which makes a new database at the head: a later
revision that changes these objects keeps this module as the head's and gives
``0003_log_search`` a copy of what it had.
"""

from __future__ import annotations

__all__ = ["POSTGRESQL", "SQLITE", "statements"]

SQLITE = (
    "CREATE VIRTUAL TABLE tasklogs_fts USING fts5("
    "Message, content='tasklogs', content_rowid='rowid', "
    "tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER tasklogs_fts_insert AFTER INSERT ON tasklogs BEGIN "
    "INSERT INTO tasklogs_fts(rowid, Message) VALUES (new.rowid, new.Message); END",
    "CREATE TRIGGER tasklogs_fts_delete AFTER DELETE ON tasklogs BEGIN "
    "INSERT INTO tasklogs_fts(tasklogs_fts, rowid, Message) "
    "VALUES ('delete', old.rowid, old.Message); END",
    "CREATE TRIGGER tasklogs_fts_update AFTER UPDATE OF Message ON tasklogs BEGIN "
    "INSERT INTO tasklogs_fts(tasklogs_fts, rowid, Message) "
    "VALUES ('delete', old.rowid, old.Message); "
    "INSERT INTO tasklogs_fts(rowid, Message) VALUES (new.rowid, new.Message); END",
    "INSERT INTO tasklogs_fts(tasklogs_fts) VALUES ('rebuild')",
)

POSTGRESQL = (
    'ALTER TABLE tasklogs ADD COLUMN "MessageWords" tsvector GENERATED ALWAYS AS ('
    "to_tsvector('simple'::regconfig, "
    """regexp_replace(left("Message", 32768), '[^[:alnum:]]+', ' ', 'g'))) STORED""",
    'CREATE INDEX ix_tasklogs_message_fts ON tasklogs USING gin ("MessageWords")',
    'CREATE INDEX ix_tasklogs_insert_ts ON tasklogs ("InsertTs")',
)


def statements(dialect: str) -> tuple[str, ...]:
    """The statements for a database of ``dialect`` (none for other databases), to run
    as written, through the driver (no bind-parameter parsing of ``[:alnum:]``'s colons)."""
    return SQLITE if dialect == "sqlite" else POSTGRESQL if dialect == "postgresql" else ()
