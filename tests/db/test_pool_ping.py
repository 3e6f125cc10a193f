"""PostgreSQL connections are pinged when they rested in the pool, not on every checkout.

A connection the server dropped while it rested is replaced before anyone uses it; one
taken again at once is not pinged (the ping was a round trip in every hop of a busy
scheduler), and if it was lost meanwhile its one transaction fails and the pool replaces it.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from ppacer.db import engine as engine_module
from ppacer.db.engine import database_url, open_scheduler_db


def _kill_backends(url: str, of_pid: int) -> None:
    admin = create_engine(database_url(url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": of_pid})
    finally:
        admin.dispose()


def _backend_pid(engine: object) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_rested_connection_the_server_dropped_is_replaced_unseen(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 0.0)  # every return has rested
    engine = open_scheduler_db(pg_url)
    try:
        first = _backend_pid(engine)
        _kill_backends(pg_url, first)
        with engine.begin() as conn:  # no error: the ping found it gone, the pool replaced it
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        assert _backend_pid(engine) != first
    finally:
        engine.dispose()


def test_a_connection_taken_again_at_once_is_not_pinged(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 3600.0)  # never rested enough
    engine = open_scheduler_db(pg_url)
    try:
        first = _backend_pid(engine)
        _kill_backends(pg_url, first)
        # Not pinged: the lost connection fails its one statement, and is replaced.
        with pytest.raises(OperationalError), engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert _backend_pid(engine) != first
    finally:
        engine.dispose()
