"""The database away for a while: work is delayed, never lost, and the scheduler stays responsive.

Real scheduler and executor on loopback; the outage is made from outside, as
it happens: another process holds SQLite's write lock past the busy timeout,
or PostgreSQL terminates the test database's connections and refuses new ones
(on the test's own database only: the shared server is never restarted).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import create_engine, text

import ppacer
from ppacer.db.engine import database_url
from ppacer.local import LocalRunner
from ppacer.scheduler.config import Config
from tests.conftest import PG_ADMIN_URL, wait_for

pytestmark = pytest.mark.reliability

# A short database wait and lease: the outage below outlasts both.
CONFIG = Config(db_wait_s=0.2, lease_timeout_s=4.0)
TASKS = 12


class Step(ppacer.BaseTask):
    """Takes a little while, so the outage falls in the middle of the run."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        ctx.logger.info("step %s", self.task_id)
        time.sleep(0.15)


def _chain(dag_id: str) -> ppacer.Registry:
    root = ppacer.Node(Step("t0"))
    node = root
    for i in range(1, TASKS):
        node = node.next(Step(f"t{i}"))
    return ppacer.Registry([ppacer.Dag(dag_id, root=root).done()])


def _health(url: str) -> tuple[int, dict[str, Any]] | None:
    try:
        answer = httpx2.get(f"{url}/healthz", timeout=1.0)  # the loop must answer at once
    except httpx2.TransportError:
        return None
    return answer.status_code, answer.json()


def _attempts(runner: LocalRunner, run_id: int) -> list[tuple[str, int, str]]:
    run = runner.client.get_dag_run(run_id)
    return [(t["taskId"], t["retry"], t["status"]) for t in run["tasks"]]


def _assert_every_task_ran_once(runner: LocalRunner, run_id: int) -> None:
    run = runner.client.get_dag_run(run_id)
    assert run["status"] == "SUCCESS", run
    assert _attempts(runner, run_id) == [(f"t{i}", 0, "SUCCESS") for i in range(TASKS)]
    assert not [t for t in run["tasks"] if t["error"]]


def _outage(
    runner: LocalRunner, run_id: int, begin: Callable[[], None], end: Callable[[], None]
) -> None:
    """Start the outage mid-run, check the scheduler stays responsive and says why, end it."""
    wait_for(lambda: sum(s == "SUCCESS" for *_, s in _attempts(runner, run_id)) >= 2, 30, "2 tasks")
    begin()
    try:
        # The scheduler notices at its next write, says so in /healthz, and answers quickly.
        def unhealthy() -> dict[str, Any] | None:
            found = _health(runner.url)
            assert found is not None, "/healthz did not answer within 1 s"
            return found[1] if found[0] == 503 else None

        body = wait_for(unhealthy, 20, "/healthz to report the outage")
        assert "unavailable" in body["checks"]["db"]
        # Longer than a lease: leases must not expire while the database is away.
        deadline = time.monotonic() + 1.5 * CONFIG.lease_timeout_s
        while time.monotonic() < deadline:
            assert _health(runner.url) is not None, "/healthz did not answer within 1 s"
            time.sleep(0.2)
    finally:
        end()
    wait_for(lambda: (_health(runner.url) or (0, {}))[0] == 200, 30, "/healthz to recover")


def test_sqlite_locked_past_the_busy_timeout_delays_work_and_loses_none(tmp_path: Path) -> None:
    db, logs = tmp_path / "scheduler.db", tmp_path / "logs.db"
    runner = LocalRunner(_chain("locked"), str(db), str(logs), port=0, config=CONFIG).start()
    release = tmp_path / "release"
    holder: list[subprocess.Popen[bytes]] = []

    def lock() -> None:
        code = (
            "import sqlite3, sys, time, pathlib\n"
            f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            f"while not pathlib.Path({str(release)!r}).exists(): time.sleep(0.02)\n"
            "c.execute('ROLLBACK')\n"
        )
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
        holder.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"locked"

    def unlock() -> None:
        release.write_text("go")
        holder[0].wait(10)
        assert holder[0].stdout is not None
        holder[0].stdout.close()

    try:
        run_id = runner.client.trigger_dag_run("locked")["runId"]
        _outage(runner, run_id, lock, unlock)
        wait_for(lambda: runner.client.get_dag_run(run_id)["status"] != "RUNNING", 60, "the run")
        _assert_every_task_ran_once(runner, run_id)
    finally:
        runner.stop()


@pytest.mark.postgres
def test_postgres_connections_cut_and_refused_delay_work_and_lose_none(pg_url: str) -> None:
    name = pg_url.rsplit("/", 1)[1]
    admin = create_engine(database_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    runner = LocalRunner(_chain("cut"), pg_url, pg_url, port=0, config=CONFIG).start()

    def cut() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )

    def restore() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))

    try:
        run_id = runner.client.trigger_dag_run("cut")["runId"]
        _outage(runner, run_id, cut, restore)
        wait_for(lambda: runner.client.get_dag_run(run_id)["status"] != "RUNNING", 60, "the run")
        _assert_every_task_ran_once(runner, run_id)
    finally:
        restore()
        runner.stop()
        admin.dispose()
