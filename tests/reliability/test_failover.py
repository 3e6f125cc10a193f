"""A leader and a standby scheduler on PostgreSQL: the leader killed, cut off, paused; nothing lost.

Real ``ppacer scheduler`` and ``ppacer executor`` processes on loopback ports,
the test's own PostgreSQL database. Every task appends a line to a file when it
runs (``tests/reliability/ha_dags.py``), so the test counts real executions
across takeovers, besides what ``dagruntasks`` says.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import Engine, create_engine, text

from ppacer.api.client import Client
from ppacer.db.engine import database_url
from ppacer.timeutils import parse_ts
from tests.conftest import PG_ADMIN_URL, wait_for
from tests.procs import Proc, clean_env, ppacer_command
from tests.procs import procs as procs  # a fixture
from tests.reliability.ha_dags import WIDE_TASKS

pytestmark = [pytest.mark.postgres, pytest.mark.reliability]

ROOT = Path(__file__).resolve().parents[2]
DAGS = "tests.reliability.ha_dags"
EXECUTORS = 2
CONCURRENCY = 4
# At most this many attempts are in flight when a leader goes: the executors' slots.
IN_FLIGHT = EXECUTORS * CONCURRENCY


_TERMINATE = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """Schedulers and executors of one database, as processes."""

    def __init__(self, tmp_path: Path, db: str, procs: list[Proc]) -> None:
        self.tmp_path = tmp_path
        self.db = db
        self.procs = procs
        self.ran = tmp_path / "ran.txt"
        self.env = clean_env(
            PPACER_TEST_RAN=str(self.ran), PYTHONPATH=str(ROOT), PPACER_LOG_LEVEL="INFO"
        )
        self.ports: dict[str, int] = {}
        self.schedulers: dict[str, Proc] = {}
        self.engine: Engine = create_engine(database_url(db.split("?")[0]))
        self.clients: list[Client] = []

    def client(self, urls: str) -> Client:
        """A client of ``urls`` (closed at the end of the test)."""
        self.clients.append(Client(urls))
        return self.clients[-1]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def urls(self) -> str:
        return ",".join(self.url(name) for name in sorted(self.ports))

    def scheduler(self, name: str, db: str | None = None, **env: str) -> Proc:
        """Start (or restart, on its port) scheduler ``name``; return once it answers."""
        port = self.ports.setdefault(name, _free_port())
        args = ["scheduler", DAGS, "--db", db or self.db, "--port", str(port)]
        proc = Proc(args, self.tmp_path, {**self.env, **env})
        self.procs.append(proc)
        self.schedulers[name] = proc
        wait_for(lambda: self.health(name) is not None, 30, f"scheduler {name} to answer")
        return proc

    def executors(self, n: int = EXECUTORS) -> None:
        for i in range(n):
            args = ["executor", DAGS, "--url", self.urls, "--concurrency", str(CONCURRENCY)]
            self.procs.append(Proc([*args, "--name", f"e{i}"], self.tmp_path, self.env))

    def health(self, name: str) -> dict[str, Any] | None:
        try:
            answer = httpx2.get(f"{self.url(name)}/healthz", timeout=2.0)
        except httpx2.TransportError:
            return None
        found: dict[str, Any] = answer.json()
        found["code"] = answer.status_code
        return found

    def role(self, name: str) -> str | None:
        found = self.health(name)
        return None if found is None else found["checks"].get("role")

    def wait_role(self, name: str, role: str, timeout_s: float = 30.0) -> None:
        wait_for(lambda: self.role(name) == role, timeout_s, f"scheduler {name} to be {role}")

    def successes(self, exec_ts: str) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        'SELECT count(*) FROM dagruntasks WHERE "ExecTs" = :ts '
                        "AND \"Status\" = 'SUCCESS'"
                    ),
                    {"ts": exec_ts},
                ).scalar_one()
            )

    def run_status(self, exec_ts: str) -> str:
        with self.engine.connect() as conn:
            return str(
                conn.execute(
                    text('SELECT "Status" FROM dagruns WHERE "ExecTs" = :ts'), {"ts": exec_ts}
                ).scalar_one()
            )

    def wait_finished(self, exec_ts: str, timeout_s: float = 90.0) -> str:
        return wait_for(
            lambda: (s := self.run_status(exec_ts)) in ("SUCCESS", "FAILED") and s,
            timeout_s,
            f"run {exec_ts} to finish",
        )

    def first_start_after(self, exec_ts: str, moment: datetime) -> datetime | None:
        """When the first attempt of the run was handed out after ``moment`` (new leader)."""
        with self.engine.connect() as conn:
            starts = conn.execute(
                text('SELECT "StartTs" FROM dagruntaskstarts WHERE "ExecTs" = :ts'),
                {"ts": exec_ts},
            ).scalars()
            later = [t for t in map(parse_ts, starts) if t > moment]
        return min(later) if later else None

    def assert_every_task_succeeded_once(self, exec_ts: str) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    'SELECT "TaskId", "Retry", "Status" FROM dagruntasks WHERE "ExecTs" = :ts '
                    'ORDER BY "TaskId", "Retry"'
                ),
                {"ts": exec_ts},
            ).all()
        assert len(rows) == WIDE_TASKS, f"{len(rows)} attempts recorded"
        assert {(r[1], r[2]) for r in rows} == {(0, "SUCCESS")}, rows

    def reruns(self) -> int:
        """Executions beyond the first of each task of each run (attempts that ran twice)."""
        runs = Counter(tuple(line.split()[:2]) for line in self.ran.read_text().splitlines())
        return sum(n - 1 for n in runs.values())

    def executed(self, exec_ts_iso: str) -> set[str]:
        lines = self.ran.read_text().splitlines()
        return {line.split()[1] for line in lines if line.split()[0] == exec_ts_iso}


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, procs: list[Proc]) -> Iterator[Cluster]:
    found = Cluster(tmp_path, pg_url, procs)
    yield found
    for client in found.clients:
        client.close()
    found.engine.dispose()


def _kill_mid_run(cluster: Cluster, name: str, exec_ts: str) -> datetime:
    """SIGKILL scheduler ``name`` once 60 tasks of the run succeeded; when (UTC)."""
    wait_for(lambda: cluster.successes(exec_ts) >= 60, 60, "60 tasks to succeed")
    killed_at = datetime.now().astimezone()
    cluster.schedulers[name].popen.kill()
    cluster.schedulers[name].popen.wait(10)
    return killed_at


def test_sigkill_of_the_leader_twice_loses_no_task_and_clients_follow(
    cluster: Cluster,
) -> None:
    cluster.scheduler("a")
    cluster.wait_role("a", "leader")
    cluster.scheduler("b")
    cluster.wait_role("b", "standby")
    assert cluster.health("b")["checks"]["leader"] == cluster.url("a")  # type: ignore[index]
    cluster.executors()
    client = cluster.client(cluster.urls)

    first = client.trigger_dag_run("wide")["execTs"]
    killed_at = _kill_mid_run(cluster, "a", first)
    cluster.wait_role("b", "leader")
    # The CLI given both URLs works while the first is dead.
    listed = subprocess.run(
        [*ppacer_command(), "runs", "list", "--url", cluster.urls, "--json"],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert first in listed.stdout
    assert cluster.wait_finished(first) == "SUCCESS"
    takeover = cluster.first_start_after(first, killed_at)
    assert takeover is not None, "the new leader handed out no task"

    cluster.scheduler("a")  # back, as the standby now
    cluster.wait_role("a", "standby")
    second = client.trigger_dag_run("wide")["execTs"]
    killed_again = _kill_mid_run(cluster, "b", second)
    cluster.wait_role("a", "leader")
    assert cluster.wait_finished(second) == "SUCCESS"
    assert cluster.first_start_after(second, killed_again) is not None

    for exec_ts in (first, second):
        cluster.assert_every_task_succeeded_once(exec_ts)
    reruns = cluster.reruns()
    assert reruns <= 2 * IN_FLIGHT, f"{reruns} attempts ran twice"
    print(
        f"takeovers: {(takeover - killed_at).total_seconds():.2f}s, "
        f"{(cluster.first_start_after(second, killed_again) - killed_again).total_seconds():.2f}s;"  # type: ignore[operator]
        f" attempts run twice: {reruns}"
    )

    # A standby's URL alone works: reads and changes go through it to the leader.
    cluster.scheduler("b")
    cluster.wait_role("b", "standby")
    through_standby = cluster.client(cluster.url("b"))
    run = through_standby.trigger_dag_run("wide")
    third = run["execTs"]
    assert cluster.wait_finished(third) == "SUCCESS"
    assert through_standby.get_dag_run(run["runId"])["status"] == "SUCCESS"
    listed = [r["execTs"] for r in through_standby.list_dag_runs()["items"]]
    assert {first, second, third} <= set(listed)
    # Its UI is read-only and names the leader; its pages work.
    for page in ("/ui", "/ui/dags", "/ui/runs", "/ui/dag/wide", f"/ui/runs/{run['runId']}"):
        answer = httpx2.get(cluster.url("b") + page, timeout=10)
        assert answer.status_code == 200, (page, answer.text[:300])
        assert "This scheduler stands by" in answer.text
        assert f'href="{cluster.url("a")}/ui"' in answer.text
    standby_log = "\n".join(cluster.schedulers["b"].err.all() + cluster.schedulers["b"].out.all())
    assert "Traceback" not in standby_log


@pytest.fixture
def roles(pg_url: str) -> Iterator[tuple[str, str]]:
    """Two login roles for the two schedulers (cut one off by its role), dropped after."""
    names = tuple(f"ppacer_ha_{uuid.uuid4().hex[:8]}" for _ in range(2))
    admin = create_engine(database_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'CREATE ROLE "{name}" LOGIN SUPERUSER'))
    try:
        yield names  # type: ignore[misc]
    finally:
        owner = create_engine(database_url(pg_url), isolation_level="AUTOCOMMIT")
        with owner.connect() as conn:
            for name in names:
                conn.execute(text(f'ALTER ROLE "{name}" LOGIN'))
                conn.execute(text(_TERMINATE), {"n": name})
                conn.execute(text(f'REASSIGN OWNED BY "{name}" TO postgres'))
        owner.dispose()
        with admin.connect() as conn:
            for name in names:
                conn.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()


def test_a_leader_cut_off_from_the_database_is_replaced_and_stands_by_when_back(
    cluster: Cluster, pg_url: str, roles: tuple[str, str]
) -> None:
    role_a, role_b = roles
    as_role = {r: pg_url.replace("postgres@", f"{r}@") for r in roles}
    admin = create_engine(database_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    cluster.scheduler("a", db=as_role[role_a])
    cluster.wait_role("a", "leader")
    cluster.scheduler("b", db=as_role[role_b])
    cluster.wait_role("b", "standby")
    cluster.executors()
    exec_ts = cluster.client(cluster.urls).trigger_dag_run("wide")["execTs"]
    wait_for(lambda: cluster.successes(exec_ts) >= 60, 60, "60 tasks to succeed")
    with admin.connect() as conn:  # the leader's connections cut, new ones refused
        conn.execute(text(f'ALTER ROLE "{role_a}" NOLOGIN'))
        conn.execute(text(_TERMINATE), {"n": role_a})
    cluster.wait_role("b", "leader")
    assert cluster.wait_finished(exec_ts) == "SUCCESS"
    # Cut off, the old leader stepped down by its own clock.
    cluster.schedulers["a"].err.wait_for_text("stepping down to standby", 30)
    with admin.connect() as conn:
        conn.execute(text(f'ALTER ROLE "{role_a}" LOGIN'))
    admin.dispose()
    wait_for(
        lambda: (cluster.health("a") or {"checks": {}})["checks"].get("leader") == cluster.url("b"),
        30,
        "a to stand by for b",
    )
    assert cluster.role("a") == "standby"
    cluster.assert_every_task_succeeded_once(exec_ts)
    assert cluster.reruns() <= IN_FLIGHT


_AUDIT = """
CREATE TABLE test_writes (app text, tbl text, at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION test_audit() RETURNS trigger AS $$
BEGIN
    INSERT INTO test_writes (app, tbl) VALUES (current_setting('application_name'), TG_TABLE_NAME);
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER test_audit_tasks AFTER INSERT OR UPDATE ON dagruntasks
    FOR EACH ROW EXECUTE FUNCTION test_audit();
CREATE TRIGGER test_audit_runs AFTER INSERT OR UPDATE ON dagruns
    FOR EACH ROW EXECUTE FUNCTION test_audit();
"""


def test_a_paused_leader_that_wakes_up_after_a_takeover_writes_nothing(
    cluster: Cluster, pg_url: str
) -> None:
    named = {n: f"{pg_url}?application_name=sched_{n}" for n in ("a", "b")}
    cluster.scheduler("a", db=named["a"])
    cluster.wait_role("a", "leader")
    with cluster.engine.begin() as conn:  # every committed write, by the scheduler that made it
        conn.exec_driver_sql(_AUDIT)
    cluster.scheduler("b", db=named["b"])
    cluster.wait_role("b", "standby")
    cluster.executors()
    exec_ts = cluster.client(cluster.urls).trigger_dag_run("wide")["execTs"]
    wait_for(lambda: cluster.successes(exec_ts) >= 60, 60, "60 tasks to succeed")
    paused = cluster.schedulers["a"].popen
    paused.send_signal(signal.SIGSTOP)
    try:
        cluster.wait_role("b", "leader")  # a's lease lapsed: it was paused past it
        with cluster.engine.connect() as conn:
            took_over = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    finally:
        paused.send_signal(signal.SIGCONT)
    cluster.wait_role("a", "standby")
    assert cluster.wait_finished(exec_ts) == "SUCCESS"
    with cluster.engine.connect() as conn:
        late = conn.execute(
            text("SELECT tbl, at FROM test_writes WHERE app = 'sched_a' AND at >= :t"),
            {"t": took_over},
        ).all()
        by_b = conn.execute(text("SELECT count(*) FROM test_writes WHERE app = 'sched_b'"))
        assert by_b.scalar_one() > 0
    assert late == [], f"the paused leader wrote after the takeover: {late}"
    cluster.schedulers["a"].err.wait_for_text("stepping down to standby", 30)
    cluster.assert_every_task_succeeded_once(exec_ts)
    assert cluster.reruns() <= IN_FLIGHT


def test_a_standby_with_other_dag_code_refuses_to_take_over_but_takes_a_hand_over(
    cluster: Cluster,
) -> None:
    cluster.scheduler("a")
    cluster.wait_role("a", "leader")
    cluster.scheduler("b", PPACER_TEST_VARIANT="1")
    wait_for(lambda: (cluster.health("b") or {}).get("code") == 503, 30, "b to refuse")
    refusal = cluster.health("b")["checks"]["takeover"]  # type: ignore[index]
    assert "differs from the leader's" in refusal
    assert "deploy the same DAG code" in refusal

    # A deploy: SIGTERM hands leadership over at once, to any code.
    handed_at = time.monotonic()
    assert cluster.schedulers["a"].stop(signal.SIGTERM) == 0
    cluster.wait_role("b", "leader")
    handover_s = time.monotonic() - handed_at
    print(f"graceful hand-over: {handover_s:.2f}s")

    # The old code comes back as a standby, and would not take over from the new.
    cluster.scheduler("a")
    wait_for(lambda: (cluster.health("a") or {}).get("code") == 503, 30, "a to refuse")
    cluster.schedulers["b"].popen.kill()
    cluster.schedulers["b"].popen.wait(10)

    def lease_lapsed_long_ago() -> bool:
        with cluster.engine.connect() as conn:
            remaining = conn.execute(
                text(
                    'SELECT EXTRACT(EPOCH FROM ("LeaseUntil" - clock_timestamp())) '
                    'FROM schedulerleader WHERE "Id" = 1'
                )
            ).scalar_one()
        return remaining is not None and float(remaining) < -2.0  # 4 standby polls ago

    wait_for(lease_lapsed_long_ago, 30, "the dead leader's lease to lapse")
    assert cluster.role("a") == "standby"
    cluster.schedulers["a"].err.wait_for_text("will not take over", 10)


def test_a_second_scheduler_on_one_sqlite_file_is_refused_naming_the_first(
    tmp_path: Path, procs: list[Proc]
) -> None:
    env = clean_env(PYTHONPATH=str(ROOT))
    first = Proc(["scheduler", DAGS, "--db", "one.db", "--port", "0"], tmp_path, env)
    procs.append(first)
    first.out.wait_for("UI:")
    second = subprocess.run(
        [*ppacer_command(), "scheduler", DAGS, "--db", "one.db", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    message = second.stderr.strip().splitlines()[-1]
    assert "another scheduler" in message
    assert f"pid {first.popen.pid}" in message
    assert "Traceback" not in second.stderr
    assert first.popen.poll() is None  # the first one serves on
