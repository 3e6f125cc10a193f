"""Database engines: embedded SQLite (the default) or PostgreSQL, through the same code."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import StaticPool

from ppacer.db.migrate import LOGS_DB, SCHEDULER_DB, History, ensure_schema
from ppacer.redact import redact_url

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


def _open(target: str | Engine, history: History, may_upgrade: bool) -> Engine:
    engine = _make_engine(target)
    where = redact_url(str(target)) if isinstance(target, str) else redact_url(str(engine.url))
    try:
        ensure_schema(engine, history, may_upgrade=may_upgrade, where=where)
    except BaseException:
        if not isinstance(target, Engine):
            engine.dispose()
        raise
    return engine


def open_scheduler_db(target: str | Engine, *, upgrade: bool = True) -> Engine:
    """Open the scheduler DB at a path or URL, creating or upgrading its schema.

    With ``upgrade=False`` a database without this ppacer's schema raises
    :class:`~ppacer.db.migrate.SchemaError` naming the command that upgrades it.
    """
    return _open(target, SCHEDULER_DB, upgrade)


def open_logs_db(target: str | Engine, *, upgrade: bool = True) -> Engine:
    """Open the task logs DB at a path or URL, creating or upgrading its schema."""
    return _open(target, LOGS_DB, upgrade)
