"""Database engines: embedded SQLite (the default) or PostgreSQL, through the same code."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import StaticPool

from ppacer.db.migrate import LOGS_DB, SCHEDULER_DB, History, ensure_schema
from ppacer.errors import PpacerError
from ppacer.redact import redact_url

__all__ = [
    "MissingDriverError",
    "database_url",
    "open_logs_db",
    "open_scheduler_db",
    "sqlite_file",
]

log = logging.getLogger(__name__)


class MissingDriverError(PpacerError):
    """The database's driver is not installed (PostgreSQL without ``ppacer[postgres]``)."""


def _require_psycopg() -> None:
    """Raise :class:`MissingDriverError`, saying what to install, unless psycopg imports."""
    try:
        import psycopg  # noqa: F401 - SQLAlchemy imports it again, from the module cache
    except ImportError as exc:
        raise MissingDriverError(
            f"a PostgreSQL database needs the psycopg driver, which cannot be imported ({exc}): "
            "pip install 'ppacer[postgres]'"
        ) from None


def database_url(target: str) -> str:
    """Turn a file path or URL into a SQLAlchemy URL.

    ``scheduler.db`` (any string without ``://``) is a SQLite file;
    ``postgresql://...`` uses the psycopg 3 driver, and without it installed
    raises :class:`MissingDriverError` naming the extra that brings it.
    """
    if "://" not in target:
        return f"sqlite+pysqlite:///{target}"
    if target.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        _require_psycopg()
        return "postgresql+psycopg://" + target.split("://", 1)[1]
    return target


def sqlite_file(engine: Engine) -> str | None:
    """The file of ``engine``'s SQLite database (None: another database, or one in memory)."""
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:":
        return None
    return path


def _sqlite_pragmas(busy_timeout_s: float, wal_autocheckpoint: int | None) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        # A new file gives pages freed by retention back to the file system (an existing
        # one keeps its mode: `ppacer prune --vacuum` changes it). Before WAL, or it is lost.
        cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
        # WAL: readers never block the writer; NORMAL sync is durable across app crashes.
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        if wal_autocheckpoint is not None:
            cur.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
        cur.close()

    return on_connect


def _make_engine(
    target: str | Engine, busy_timeout_s: float = 30.0, wal_autocheckpoint: int | None = None
) -> Engine:
    """An engine on ``target``; a write waits at most ``busy_timeout_s`` for a lock.

    PostgreSQL connections give up connecting, and waiting for a lock, after the
    same time, so an unavailable database is an error soon rather than a hang.
    """
    if isinstance(target, Engine):
        return target
    url = database_url(target)
    if url.startswith("sqlite"):
        connect_args = {"check_same_thread": False, "timeout": busy_timeout_s}
        kwargs: dict[str, Any] = {"connect_args": connect_args}
        if url in ("sqlite+pysqlite:///:memory:", "sqlite+pysqlite://"):
            kwargs["poolclass"] = StaticPool
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_s, wal_autocheckpoint))
        return engine
    wait_ms = int(busy_timeout_s * 1000)
    pg_args = {
        "connect_timeout": max(1, round(busy_timeout_s)),
        "options": f"-c lock_timeout={wait_ms} -c idle_in_transaction_session_timeout=60000",
    }
    engine = create_engine(
        url,
        pool_size=5,
        max_overflow=10,
        pool_timeout=max(1.0, busy_timeout_s),
        connect_args=pg_args,
    )
    event.listen(engine, "checkin", _rest_started)
    event.listen(engine, "checkout", _ping_if_rested)
    return engine


#: A pooled PostgreSQL connection idle this long is pinged before it is used again.
PING_AFTER_IDLE_S = 1.0


def _rest_started(_dbapi_conn: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_rested(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """Ping a connection that rested in the pool (a ``SELECT 1``): one the server or the
    network dropped meanwhile is replaced before it is used (the pool retries with a new
    one). A connection back within :data:`PING_AFTER_IDLE_S` is not pinged: on a busy
    scheduler, where a hop takes a connection for each transaction, the ping was a round
    trip in every hop; a connection lost that soon fails its transaction, which the
    database gate treats as any outage."""
    since = record.info.get("idle_since")
    if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
        return
    try:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        dbapi_conn.rollback()
    except Exception as exc:
        raise DisconnectionError(f"a pooled connection is gone: {exc}") from exc


def _open(
    target: str | Engine,
    history: History,
    may_upgrade: bool,
    busy_timeout_s: float = 30.0,
    wal_autocheckpoint: int | None = None,
) -> Engine:
    engine = _make_engine(target, busy_timeout_s, wal_autocheckpoint)
    where = redact_url(str(target)) if isinstance(target, str) else redact_url(str(engine.url))
    # An upgrade may wait for another process's (serialised) upgrade: not with a short wait.
    patient = _make_engine(target) if isinstance(target, str) else engine
    try:
        ensure_schema(patient, history, may_upgrade=may_upgrade, where=where)
    except BaseException:
        if not isinstance(target, Engine):
            engine.dispose()
        raise
    finally:
        if patient is not engine:
            patient.dispose()
    return engine


def open_scheduler_db(
    target: str | Engine,
    *,
    upgrade: bool = True,
    busy_timeout_s: float = 30.0,
    wal_autocheckpoint: int | None = None,
) -> Engine:
    """Open the scheduler DB at a path or URL, creating or upgrading its schema.

    With ``upgrade=False`` a database without this ppacer's schema raises
    :class:`~ppacer.db.migrate.SchemaError` naming the command that upgrades it.
    ``busy_timeout_s`` bounds how long a statement waits for a lock or a connection.
    ``wal_autocheckpoint`` (SQLite): WAL pages past which a commit checkpoints (SQLite's
    default 1,000; a scheduler raises it and checkpoints in a thread:
    :mod:`ppacer.db.checkpoints`).
    """
    return _open(target, SCHEDULER_DB, upgrade, busy_timeout_s, wal_autocheckpoint)


def open_logs_db(
    target: str | Engine, *, upgrade: bool = True, wal_autocheckpoint: int | None = None
) -> Engine:
    """Open the task logs DB at a path or URL, creating or upgrading its schema
    (``wal_autocheckpoint``: as for :func:`open_scheduler_db`)."""
    return _open(target, LOGS_DB, upgrade, wal_autocheckpoint=wal_autocheckpoint)
