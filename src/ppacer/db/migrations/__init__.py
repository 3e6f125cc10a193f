"""Alembic migrations of the two databases, shipped inside the package.

Two histories, each with its own version table: ``scheduler/`` for the
scheduler DB (``alembic_version``) and ``logs/`` for the logs DB
(``alembic_version_logs``). Two, not one history with branches, because the
logs DB is often another database (``logs.db`` beside ``scheduler.db``, or a
shared logs DB), and on PostgreSQL both may live in one database: each history
must be upgradable and checkable on its own. Migrations run only through
:mod:`ppacer.db.migrate` (``ppacer db upgrade`` or the scheduler's start), on a
connection it gives them; SQLite changes go through Alembic's batch mode.
Downgrades are not provided: a database is only ever moved forward.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData

__all__ = ["run_migrations"]


def run_migrations(context: Any, target_metadata: MetaData, version_table: str) -> None:
    """The body of each history's ``env.py``: migrate on the connection ppacer passes."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "ppacer's migrations run through `ppacer db upgrade` (ppacer.db.migrate), "
            "not through the alembic command line"
        )
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=version_table,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
