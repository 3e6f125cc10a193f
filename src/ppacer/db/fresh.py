"""A new, empty database made at the latest revision in one step, from the models.

What the migrations would leave in an empty database, without loading Alembic
(it imports Mako and Pygments with it: a first ``ppacer run`` used 74.9 MiB
with it, 63.3 without, BENCHMARKS.md): the models' tables
(:mod:`ppacer.db.schema`), the rows the migrations seed, the log search's
objects, and the version table at the head, as Alembic writes it.
:mod:`ppacer.db.migrate` uses it for an empty database only; a database with
any of ppacer's tables goes through the migrations. A test builds one database
each way, on SQLite and PostgreSQL, and compares every table, column, index,
constraint, trigger and seeded row.
"""

from __future__ import annotations

import secrets

from sqlalchemy import Column, Connection, MetaData, PrimaryKeyConstraint, String, Table

from ppacer.db import search_ddl
from ppacer.db.schema import SCHEMA_VERSION, schedulerleader, schemaversion, tasklogs
from ppacer.timeutils import format_ts, utc_now

__all__ = ["create_fresh"]


def create_fresh(conn: Connection, models: MetaData, version_table: str, head: str) -> None:
    """Create ``models``' tables and their seeded rows in ``conn``'s empty database, at ``head``.

    Runs in the caller's transaction (one transaction on SQLite and PostgreSQL
    alike: DDL is transactional on both).
    """
    models.create_all(conn)
    if schemaversion.name in models.tables:
        # Revision 0001 recorded the schema version as ppacer did before migrations.
        conn.execute(
            schemaversion.insert().values(Version=SCHEMA_VERSION, InsertTs=format_ts(utc_now()))
        )
    if schedulerleader.name in models.tables:
        # Revision 0003: nobody leads, epoch 0, a secret of this database's own.
        conn.execute(schedulerleader.insert().values(Id=1, Epoch=0, Secret=secrets.token_hex(32)))
    if tasklogs.name in models.tables:
        for statement in search_ddl.statements(conn.dialect.name):
            conn.exec_driver_sql(statement)
    version = Table(
        version_table,
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name=f"{version_table}_pkc"),
    )
    version.create(conn)
    conn.execute(version.insert().values(version_num=head))
