"""Shared fixtures: real SQLite files, a real scheduler on a free port, a real executor."""

from __future__ import annotations

import gc
import os
import sqlite3
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import create_engine, text

import ppacer
from ppacer.db.engine import database_url
from ppacer.local import LocalRunner

#: The PostgreSQL server every machine runs (trust auth); tests make their own databases.
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout_s: float = 20.0, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    delay = 0.002
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(delay)
        delay = min(0.05, delay * 2)


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """Run ``sql`` on a SQLite file with the standard library (as a user would)."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


def run_status(db: Path, dag_id: str) -> list[str]:
    """Statuses of a DAG's runs, oldest first."""
    return [
        r["Status"]
        for r in query(db, "SELECT Status FROM dagruns WHERE DagId=? ORDER BY RunId", (dag_id,))
    ]


def wait_run_finished(
    db: Path, dag_id: str, count: int = 1, timeout_s: float = 30.0
) -> list[sqlite3.Row]:
    """Wait until ``count`` runs of ``dag_id`` are SUCCESS or FAILED; return them."""

    def finished() -> list[sqlite3.Row]:
        rows = query(
            db,
            "SELECT * FROM dagruns WHERE DagId=? AND Status IN ('SUCCESS','FAILED') ORDER BY RunId",
            (dag_id,),
        )
        return rows if len(rows) >= count else []

    return wait_for(finished, timeout_s, f"{count} finished run(s) of {dag_id}")


class Recorder:
    """Thread-safe record of what tasks saw, for assertions."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, Any]] = []

    def add(self, key: str, value: Any = None) -> None:
        with self.lock:
            self.events.append((key, value))

    def task_ids(self) -> list[str]:
        with self.lock:
            return [k for k, _ in self.events]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def db_paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "scheduler.db", tmp_path / "logs.db"


@pytest.fixture
def start_local(db_paths: tuple[Path, Path]) -> Iterator[Callable[..., LocalRunner]]:
    """Start a scheduler + executor on a free loopback port with the test's SQLite files."""
    runners: list[LocalRunner] = []

    def start(registry: ppacer.Registry, **kwargs: Any) -> LocalRunner:
        db, logs = db_paths
        kwargs.setdefault("port", 0)
        kwargs.setdefault("stop_timeout_s", 10.0)
        runner = LocalRunner(registry, str(db), str(logs), **kwargs).start()
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        runner.stop()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards.

    Skips when the server cannot be reached, except in CI (``CI=true``), where
    it must be there.
    """
    name = f"ppacer_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(database_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - only without a server
        admin.dispose()
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {exc}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        # Connections to it that the test left to the garbage collector are collected
        # here, not in whichever later test the collector happens to run in (where
        # their ResourceWarning would fail a test that has nothing to do with them).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        admin.dispose()
