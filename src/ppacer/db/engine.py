"""Database engines: embedded SQLite (the default) or PostgreSQL, through the same code."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event, func, insert, select
from sqlalchemy.pool import StaticPool

from ppacer.db.schema import SCHEMA_VERSION, logs_metadata, metadata, schemaversion
from ppacer.errors import PpacerError
from ppacer.timeutils import format_ts, utc_now

__all__ = ["database_url", "open_logs_db", "open_scheduler_db"]

log = logging.getLogger(__name__)


def database_url(target: str) -> str:
    """Turn a file path or URL into a SQLAlchemy URL.

    ``scheduler.db`` (any string without ``://``) is a SQLite file;
    ``postgresql://...`` uses the psycopg 3 driver.
    """
    if "://" not in target:
        return f"sqlite+pysqlite:///{target}"
    if target.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + target.split("://", 1)[1]
    return target


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers never block the writer; NORMAL sync is durable across app crashes.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _make_engine(target: str | Engine) -> Engine:
    if isinstance(target, Engine):
        return target
    url = database_url(target)
    if url.startswith("sqlite"):
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if url in ("sqlite+pysqlite:///:memory:", "sqlite+pysqlite://"):
            kwargs["poolclass"] = StaticPool
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _init(engine: Engine, meta: MetaData, versioned: bool) -> Engine:
    meta.create_all(engine)
    if versioned:
        with engine.begin() as conn:
            found = conn.execute(select(func.max(schemaversion.c.Version))).scalar()
            if found is None:
                conn.execute(
                    insert(schemaversion).values(
                        Version=SCHEMA_VERSION, InsertTs=format_ts(utc_now())
                    )
                )
            elif found > SCHEMA_VERSION:
                raise PpacerError(
                    f"database schema version {found} is newer than this ppacer's "
                    f"({SCHEMA_VERSION}); upgrade ppacer"
                )
    return engine


def open_scheduler_db(target: str | Engine) -> Engine:
    """Open (creating tables on first use) the scheduler DB at a path or URL."""
    return _init(_make_engine(target), metadata, versioned=True)


def open_logs_db(target: str | Engine) -> Engine:
    """Open (creating tables on first use) the task logs DB at a path or URL."""
    return _init(_make_engine(target), logs_metadata, versioned=False)
