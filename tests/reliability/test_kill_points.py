"""The scheduler SIGKILLed at 20+ seeded points of a 500-task run, and frozen past the lease.

Real processes on loopback: the scheduler is the CLI, ``ppacer scheduler``, the
executor ``ppacer executor`` (``--concurrency 4``); the database a SQLite file, or
the test's own PostgreSQL database. The kill points are fractions of the run's
progress drawn from a seeded generator (``PPACER_RELIABILITY_SEED``), each reached
by polling the database's count of SUCCESS attempts (never by sleeping); after
each SIGKILL the scheduler starts again on the same database and port. To restart
in a fraction of a second, it runs forked from a parent that imported ppacer
once (``kill_dags._serve_starts``); the child runs the CLI's own entry point and
dies of the SIGKILL as any scheduler would.

Every task appends a line to a file when it runs (``kill_dags.Mark``): what
really ran, whatever the database says. What ``docs/reliability.md`` promises,
and these tests hold:

- the run ends SUCCESS; every task has one attempt, retry 0, SUCCESS, no error (a
  scheduler's restart spends no retry and fails nothing);
- an acknowledged SUCCESS is never run again: no attempt was handed out after its
  SUCCESS was recorded (``dagruntaskstarts.StartTs`` before the SUCCESS row's
  ``StatusUpdateTs``), and no task began to run after it (the file);
- work in flight is done at least once: every task ran, and a task ran twice only
  as an attempt in flight at a kill (at most once more than its attempts).

``PPACER_RELIABILITY_LONG=1``: 60 kill points per database instead of 20.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import Engine, create_engine, text

from ppacer.api.client import Client
from ppacer.db.engine import database_url
from ppacer.timeutils import parse_ts
from tests.conftest import wait_for
from tests.procs import Proc, clean_env
from tests.procs import procs as procs  # a fixture
from tests.reliability.faults import LONG, free_port
from tests.reliability.kill_dags import TASKS, task_ids

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900 if LONG else 120)]

ROOT = Path(__file__).resolve().parents[2]
DAGS = "tests.reliability.kill_dags"
#: SIGKILLs of the scheduler per run (per database).
KILL_POINTS = 60 if LONG else 20
SEED = int(os.environ.get("PPACER_RELIABILITY_SEED", "16"))
CONCURRENCY = 4
#: Seconds each task takes: the run lasts a few seconds, long enough for its points.
TASK_S = "0.01"
#: A short lease (executors heartbeat every 2 s; an attempt found RUNNING after a
#: restart waits 4 s for its executor's heartbeat), so the test waits little.
LEASE_S = 6.0


def _settings(lease_s: float, **extra: str) -> dict[str, str]:
    return clean_env(
        PYTHONPATH=str(ROOT),
        PPACER_TEST_TASK_S=TASK_S,
        PPACER_SCHEDULER_LEASE_TIMEOUT_S=str(lease_s),
        # PostgreSQL: a restarted scheduler takes the dead one's leadership within ~1 s.
        PPACER_SCHEDULER_LEADER_LEASE_S="1",
        PPACER_SCHEDULER_STANDBY_POLL_S="0.2",
        **extra,
    )


class Starter:
    """The warm parent the scheduler processes are forked from (see ``kill_dags``)."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", DAGS],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _ask(self, *command: object) -> int:
        assert self.popen.stdin is not None and self.popen.stdout is not None
        self.popen.stdin.write(json.dumps(command) + "\n")
        self.popen.stdin.flush()
        answer = self.popen.stdout.readline()
        assert answer, f"the starter process ended (code {self.popen.poll()})"
        return int(answer)

    def start(self, log_file: Path, *args: str) -> int:
        """Fork a process running ``ppacer ARGS...``; its pid."""
        return self._ask("start", str(log_file), *args)

    def reap(self, pid: int) -> int:
        """Wait for a child that ends (was signalled); its exit code."""
        return self._ask("wait", pid)

    def close(self) -> None:
        if self.popen.stdin is not None:
            self.popen.stdin.close()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


class Store:
    """Reads of the scheduler's database, as the test sees it (SQLite or PostgreSQL)."""

    def __init__(self, db: str) -> None:
        self.engine: Engine = create_engine(database_url(db))

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())

    def successes(self, exec_ts: str) -> int:
        (row,) = self.rows(
            'SELECT count(*) FROM dagruntasks WHERE "ExecTs" = :ts AND "Status" = \'SUCCESS\'',
            ts=exec_ts,
        )
        return int(row[0])

    def run_status(self, exec_ts: str) -> str:
        (row,) = self.rows('SELECT "Status" FROM dagruns WHERE "ExecTs" = :ts', ts=exec_ts)
        return str(row[0])


@dataclass
class Rig:
    """One database, the scheduler (restarted on it and on one port), one executor."""

    tmp_path: Path
    db: str
    logs_db: str | None
    procs: list[Proc]
    lease_s: float = LEASE_S
    port: int = field(default_factory=free_port)
    ran: Path = field(init=False)
    env: dict[str, str] = field(init=False)
    starter: Starter = field(init=False)
    store: Store = field(init=False)
    pid: int | None = None
    starts: int = 0

    def __post_init__(self) -> None:
        self.ran = self.tmp_path / "ran.txt"
        self.env = _settings(self.lease_s, PPACER_TEST_RAN=str(self.ran), PPACER_TEST_HOLD_S="1")
        self.starter = Starter(self.tmp_path, self.env)
        self.store = Store(self.db)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> list[Path]:
        return sorted(self.tmp_path.glob("scheduler-*.log"))

    def start_scheduler(self) -> None:
        """Start the scheduler; return once it leads and answers."""
        args = ["scheduler", DAGS, "--db", self.db, "--port", str(self.port)]
        if self.logs_db is not None:
            args += ["--logs-db", self.logs_db]
        log_file = self.tmp_path / f"scheduler-{self.starts:03d}.log"
        self.pid = self.starter.start(log_file, *args)
        self.starts += 1

        def leads() -> bool:
            try:
                answer = httpx2.get(f"{self.url}/healthz", timeout=2.0)
            except httpx2.TransportError:
                return False
            role = answer.json().get("checks", {}).get("role", "leader")
            return answer.status_code == 200 and role == "leader"

        wait_for(leads, 60, f"scheduler start {self.starts} to lead (log: {log_file})")

    def kill_scheduler(self, sig: int = signal.SIGKILL) -> int:
        assert self.pid is not None
        os.kill(self.pid, sig)
        code = self.starter.reap(self.pid)
        self.pid = None
        return code

    def start_executor(self) -> Proc:
        args = ["executor", DAGS, "--url", self.url, "--concurrency", str(CONCURRENCY)]
        executor = Proc([*args, "--name", "e1"], self.tmp_path, self.env)
        self.procs.append(executor)
        executor.err.wait_for_text("registered with the scheduler", 60)
        return executor

    def close(self) -> None:
        if self.pid is not None:
            self.kill_scheduler()
        self.starter.close()
        self.store.engine.dispose()


def kill_points(n: int, seed: int) -> list[int]:
    """``n`` distinct points of progress (SUCCESS counts), 2 % to 90 % of the run, seeded.

    Not further: the last tasks go by in a few dozen milliseconds, and a point
    among them may be passed before the kill lands (the run would be over).
    """
    rng = random.Random(seed)
    fractions = sorted(rng.sample(range(20, 900), n))
    return [TASKS * f // 1000 for f in fractions]


def _reach(store: Store, exec_ts: str, point: int, timeout_s: float = 60.0) -> None:
    """Poll (every 5 ms, with a deadline) until ``point`` attempts of the run succeeded."""
    deadline = time.monotonic() + timeout_s
    while store.successes(exec_ts) < point:
        assert time.monotonic() < deadline, f"timed out waiting for {point} successes"
        time.sleep(0.005)


def _executions(ran: Path) -> dict[str, list[float]]:
    """When each task began to run (wall clock), from the oracle file."""
    out: dict[str, list[float]] = {}
    for line in ran.read_text().splitlines():
        _exec_ts, task_id, _retry, _pid, wall = line.split()
        out.setdefault(task_id, []).append(float(wall))
    return out


def assert_nothing_acknowledged_ran_again(rig: Rig, exec_ts: str) -> dict[str, int]:
    """The promises of docs/reliability.md for a run that survived scheduler kills."""
    assert rig.store.run_status(exec_ts) == "SUCCESS"
    attempts = rig.store.rows(
        'SELECT "TaskId", "Retry", "Status", "StatusUpdateTs" FROM dagruntasks '
        'WHERE "ExecTs" = :ts',
        ts=exec_ts,
    )
    # One attempt per task, retry 0, SUCCESS: a restart spends no retry and fails nothing.
    assert sorted((a[0], a[1], a[2]) for a in attempts) == sorted(
        (task_id, 0, "SUCCESS") for task_id in task_ids()
    )
    errors = rig.store.rows('SELECT "TaskId", "Error" FROM dagruntaskerrors')
    assert errors == [], errors
    succeeded = {a[0]: parse_ts(a[3]) for a in attempts}
    # The scheduler handed no attempt out after its SUCCESS was recorded.
    starts = rig.store.rows(
        'SELECT "TaskId", "StartTs" FROM dagruntaskstarts WHERE "ExecTs" = :ts', ts=exec_ts
    )
    # (A hand-out is written at most 20 ms after it is answered: one answered just before
    # a kill and reported after the restart may have no start row; none may be late.)
    assert 0 < len(starts) <= TASKS
    late = [(t, s) for t, s in starts if parse_ts(s) >= succeeded[t]]
    assert late == [], f"handed out again after their SUCCESS was recorded: {late}"
    # What really ran: every task, none again after its SUCCESS was recorded (1 s of slack
    # for an attempt handed out just before and begun just after), none more than twice.
    executions = _executions(rig.ran)
    assert set(executions) == set(task_ids()), set(task_ids()) ^ set(executions)
    after = {
        task_id: [datetime.fromtimestamp(t, UTC) for t in walls]
        for task_id, walls in executions.items()
        if max(walls) > succeeded[task_id].timestamp() + 1.0
    }
    assert after == {}, f"ran again after their SUCCESS was recorded: {after}"
    twice = {task_id: len(walls) for task_id, walls in executions.items() if len(walls) > 1}
    assert all(n <= 2 for n in twice.values()), twice  # one attempt each: at most 2 runs
    return twice


def _no_tracebacks(rig: Rig, executor: Proc) -> None:
    for log_file in rig.logs():
        assert "Traceback" not in log_file.read_text(), log_file.read_text()[-4000:]
    assert not [line for line in executor.err.all() if "Traceback" in line]


def _kill_at_seeded_points(rig: Rig, seed: int) -> None:
    rig.start_scheduler()
    executor = rig.start_executor()
    with Client(rig.url) as client:
        exec_ts = client.trigger_dag_run("layers")["execTs"]
    began = time.monotonic()
    killed_at: list[int] = []
    restart_s, progress_s = 0.0, 0.0
    for point in kill_points(KILL_POINTS, seed):
        # The seeded point, and at least one task further than the last kill: every kill
        # falls at another point of the run (not always right after a restart).
        point = max(point, killed_at[-1] + 1 if killed_at else 0)
        waited = time.monotonic()
        _reach(rig.store, exec_ts, point)
        progress_s += time.monotonic() - waited
        assert rig.kill_scheduler() == -signal.SIGKILL
        done = rig.store.successes(exec_ts)
        assert done < TASKS and rig.store.run_status(exec_ts) == "RUNNING", "killed too late"
        killed_at.append(done)
        restarted = time.monotonic()
        rig.start_scheduler()
        restart_s += time.monotonic() - restarted
    assert len(set(killed_at)) == KILL_POINTS, killed_at  # as many points of the run
    wait_for(lambda: rig.store.run_status(exec_ts) != "RUNNING", 60, "the run to finish")
    took_s = time.monotonic() - began
    twice = assert_nothing_acknowledged_ran_again(rig, exec_ts)
    assert executor.stop(signal.SIGTERM) == 0
    _no_tracebacks(rig, executor)
    database = "postgresql" if "://" in rig.db else "sqlite"
    print(
        f"\n{database}: {len(killed_at)} SIGKILLs of the scheduler survived at "
        f"{killed_at} SUCCESS of {TASKS} (seed {seed}); "
        f"{rig.starts} starts, run finished in {took_s:.1f}s (restarts {restart_s:.1f}s, "
        f"progress between kills {progress_s:.1f}s); tasks that ran twice "
        f"(in flight at a kill): {len(twice)}"
    )


def test_sqlite_scheduler_sigkilled_at_seeded_points_of_a_500_task_run_loses_nothing(
    tmp_path: Path, procs: list[Proc]
) -> None:
    rig = Rig(tmp_path, str(tmp_path / "scheduler.db"), str(tmp_path / "logs.db"), procs)
    try:
        _kill_at_seeded_points(rig, SEED)
    finally:
        rig.close()


@pytest.mark.postgres
def test_postgres_scheduler_sigkilled_at_seeded_points_of_a_500_task_run_loses_nothing(
    tmp_path: Path, procs: list[Proc], pg_url: str
) -> None:
    rig = Rig(tmp_path, pg_url, None, procs)
    try:
        _kill_at_seeded_points(rig, SEED + 1)
    finally:
        rig.close()


#: The lease of the frozen-scheduler test, in seconds, and how long the scheduler stays
#: frozen: three leases (executors heartbeat every third of one: nine heartbeats missed).
FROZEN_LEASE_S = 1.5
FROZEN_S = 3 * FROZEN_LEASE_S


def test_a_scheduler_frozen_for_three_leases_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, procs: list[Proc]
) -> None:
    """SIGSTOP while attempts run, SIGCONT three leases later: the executor kept its work.

    Leases are judged by the scheduler's clock, and a frozen scheduler is not
    counting (docs/reliability.md): when it wakes, the heartbeats and reports the
    executor kept for it renew and finish the attempts; none is failed as
    "executor lost", none runs twice.
    """
    rig = Rig(
        tmp_path, str(tmp_path / "scheduler.db"), str(tmp_path / "logs.db"), procs, FROZEN_LEASE_S
    )
    try:
        rig.start_scheduler()
        executor = rig.start_executor()
        with Client(rig.url) as client:
            held = client.trigger_dag_run("hold")["execTs"]
            layers = client.trigger_dag_run("layers")["execTs"]

        def began(task_id: str) -> bool:
            return rig.ran.exists() and f" {task_id} " in rig.ran.read_text()

        wait_for(lambda: began("held"), 60, "the held task to begin")
        wait_for(lambda: rig.store.successes(layers) >= 100, 60, "100 tasks of layers")
        assert rig.pid is not None
        os.kill(rig.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            # How long the scheduler stays frozen is what this test is about, not a
            # synchronisation: three leases, whatever else happened meanwhile.
            time.sleep(max(0.0, frozen_at + FROZEN_S - time.monotonic()))
            frozen_s = time.monotonic() - frozen_at
        finally:
            os.kill(rig.pid, signal.SIGCONT)
        for exec_ts in (held, layers):
            wait_for(lambda: rig.store.run_status(exec_ts) != "RUNNING", 60, "the runs")  # noqa: B023
        assert frozen_s >= FROZEN_S
        statuses = rig.store.rows('SELECT "DagId", "Status" FROM dagruns ORDER BY "RunId"')
        assert [tuple(r) for r in statuses] == [("hold", "SUCCESS"), ("layers", "SUCCESS")]
        attempts = rig.store.rows('SELECT "TaskId", "Retry", "Status" FROM dagruntasks')
        assert sorted(tuple(a) for a in attempts) == sorted(
            (task_id, 0, "SUCCESS") for task_id in ["held", *task_ids()]
        )
        assert rig.store.rows('SELECT "TaskId", "Error" FROM dagruntaskerrors') == []
        executions = _executions(rig.ran)
        assert {t: len(w) for t, w in executions.items() if len(w) != 1} == {}
        assert set(executions) == {"held", *task_ids()}
        assert executor.stop(signal.SIGTERM) == 0
        _no_tracebacks(rig, executor)
        print(
            f"\nscheduler frozen {frozen_s:.1f}s (lease {FROZEN_LEASE_S}s): nothing lost or rerun"
        )
    finally:
        rig.close()
