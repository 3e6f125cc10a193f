"""What the benchmarks stand on: fresh databases, the processes under test, /proc readings.

Nothing here knows a workload; ``run.py`` composes these pieces.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy import select as sql_select
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

import ppacer
from ppacer.db.engine import database_url, open_scheduler_db
from ppacer.db.schema import dagruns, dagruntasks, schedules
from ppacer.errors import PpacerError
from ppacer.timeutils import format_ts, parse_ts

HERE = Path(__file__).resolve().parent
PROCS = HERE / "procs.py"
_CLK_TCK = os.sysconf("SC_CLK_TCK")

#: The two deployments of the issue: ``ppacer.run``'s one process, and the README's
#: scheduler process plus executor process.
MODES = ("one-process", "separate")


# ---------------------------------------------------------------------- databases


class Database:
    """A fresh, empty database for one deployment: SQLite files in a temporary
    directory, or a new PostgreSQL database on the server of ``base_url``
    (dropped on close). The logs tables live next to the scheduler's on PostgreSQL.
    """

    def __init__(self, base_url: str | None, tmp: Path) -> None:
        self.base_url = base_url
        self.dir = Path(tempfile.mkdtemp(prefix="db-", dir=tmp))
        self._admin: Engine | None = None
        self._engine: Engine | None = None
        self.name: str | None = None
        if base_url is None:
            self.url = str(self.dir / "scheduler.db")
            self.logs_url = str(self.dir / "logs.db")
            self.kind = "sqlite"
            return
        url = make_url(database_url(base_url))
        self.kind = url.get_backend_name()
        if self.kind != "postgresql":
            raise SystemExit(f"--db: only PostgreSQL URLs are supported, got {base_url!r}")
        self.name = f"ppacer_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self._admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = url.set(database=self.name).render_as_string(hide_password=False)
        self.logs_url = self.url

    @property
    def engine(self) -> Engine:
        """An engine of this database for the driver's own reads (created on first use)."""
        if self._engine is None:
            self._engine = create_engine(database_url(self.url))
        return self._engine

    def create_tables(self) -> None:
        """Create the scheduler's tables (as the scheduler does on its first start)."""
        open_scheduler_db(self.url).dispose()

    def close(self) -> None:
        """Drop the database (PostgreSQL) or its directory (SQLite)."""
        if self._engine is not None:
            self._engine.dispose()
        if self._admin is not None and self.name is not None:
            with self._admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            self._admin.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- reads

    def run_row(self, run_id: int) -> Any:
        """(Status, InsertTs, StatusUpdateTs) of a DAG run."""
        query = sql_select(dagruns.c.Status, dagruns.c.InsertTs, dagruns.c.StatusUpdateTs).where(
            dagruns.c.RunId == run_id
        )
        with self.engine.connect() as conn:
            return conn.execute(query).one()

    def runs_of(self, prefix: str) -> list[Any]:
        """(DagId, ExecTs, InsertTs, Status, StatusUpdateTs) of every run of DAGs ``prefix*``."""
        query = sql_select(
            dagruns.c.DagId,
            dagruns.c.ExecTs,
            dagruns.c.InsertTs,
            dagruns.c.Status,
            dagruns.c.StatusUpdateTs,
        ).where(dagruns.c.DagId.like(f"{prefix}%"))
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    # -------------------------------------------------------------- history

    def insert_history(self, dag_ids: list[str], runs: int, tasks: int) -> None:
        """Bulk insert ``runs`` finished (SUCCESS) runs of ``dag_ids``, round robin, hourly,
        each with ``tasks`` SUCCESS attempts ``t0..``, and their ``schedules`` rows."""
        per_dag = -(-runs // len(dag_ids))
        base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        version = ppacer.__version__
        run_rows: list[tuple[Any, ...]] = []
        task_rows: list[tuple[Any, ...]] = []
        schedule_rows: list[tuple[Any, ...]] = []
        task_ids = [f"t{i}" for i in range(tasks)]
        hour = 3600.0
        for k in range(per_dag):
            at = base.timestamp() - (per_dag - k + 24) * hour
            exec_ts = format_ts(datetime.fromtimestamp(at, UTC))
            insert_ts = format_ts(datetime.fromtimestamp(at + 0.01, UTC))
            done_ts = format_ts(datetime.fromtimestamp(at + 30, UTC))
            next_ts = format_ts(datetime.fromtimestamp(at + hour, UTC))
            for dag_id in dag_ids:
                if len(run_rows) == runs:
                    break
                run_rows.append((dag_id, exec_ts, insert_ts, "SUCCESS", done_ts, version))
                schedule_rows.append((dag_id, insert_ts, "REGULAR", exec_ts, next_ts))
                for task_id in task_ids:
                    task_rows.append(
                        (dag_id, exec_ts, task_id, 0, insert_ts, "SUCCESS", done_ts, version)
                    )
        self.create_tables()
        tables = [
            (dagruns, ("DagId", "ExecTs", "InsertTs", "Status", "StatusUpdateTs", "Version")),
            (
                dagruntasks,
                (
                    "DagId",
                    "ExecTs",
                    "TaskId",
                    "Retry",
                    "InsertTs",
                    "Status",
                    "StatusUpdateTs",
                    "Version",
                ),
            ),
            (schedules, ("DagId", "InsertTs", "Event", "ScheduleTs", "NextScheduleTs")),
        ]
        data = [run_rows, task_rows, schedule_rows]
        raw = self.engine.raw_connection()
        try:
            dbapi: Any = raw.driver_connection
            cols_sql = [", ".join(f'"{c}"' for c in cols) for _, cols in tables]
            if self.kind == "sqlite":
                for (table, cols), cols_text, rows in zip(tables, cols_sql, data, strict=True):
                    marks = ", ".join("?" for _ in cols)
                    dbapi.executemany(
                        f'INSERT INTO "{table.name}" ({cols_text}) VALUES ({marks})', rows
                    )
                dbapi.commit()
            else:
                with dbapi.cursor() as cur:
                    for (table, _), cols_text, rows in zip(tables, cols_sql, data, strict=True):
                        with cur.copy(f'COPY "{table.name}" ({cols_text}) FROM STDIN') as copy:
                            for row in rows:
                                copy.write_row(row)
                dbapi.commit()
                # What autovacuum does within a minute of such a load; plans need the stats.
                dbapi.autocommit = True
                with dbapi.cursor() as cur:
                    cur.execute("ANALYZE")
        finally:
            raw.close()


# ---------------------------------------------------------------------- processes


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of a process, in MiB, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _py_spy() -> str:
    """py-spy from PATH, else next to this Python (an inactive virtual environment)."""
    return shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


class Proc:
    """A process of ``procs.py``: started, waited on until it reports ready, stopped."""

    def __init__(
        self,
        role: str,
        spec: dict[str, Any],
        logs: Path,
        label: str,
        *,
        py_spy: Path | None = None,
        py_spy_rate: int = 250,
        script: Path = PROCS,
        pythonpath: Path | None = None,
        prefix: tuple[str, ...] = (),
        **options: Any,
    ) -> None:
        self.role = role
        self.label = label
        self.stderr_path = logs / f"{label}.stderr"
        cmd = [sys.executable, str(script), role, "--spec", json.dumps(spec)]
        for key, value in options.items():
            if value is not None:
                cmd += [f"--{key.replace('_', '-')}", str(value)]
        if py_spy is not None:
            py_spy.mkdir(parents=True, exist_ok=True)
            out = py_spy / f"{label}.txt"
            cmd = [
                *(
                    _py_spy(),
                    "record",
                    "--rate",
                    str(py_spy_rate),
                    "--format",
                    "raw",
                    "--threads",
                    "--gil",
                ),
                *("-o", str(out), "--"),
                *cmd,
            ]
        # ``prefix``: e.g. ``ip netns exec NS``, which execs the command (the pid stays ours).
        cmd = [*prefix, *cmd]
        env = None
        if pythonpath is not None:
            # Another tree's ppacer (an A/B): its src/ first on the path.
            env = {**os.environ, "PYTHONPATH": str(pythonpath)}
        self.stderr = open(self.stderr_path, "w")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            start_new_session=True,
            env=env,
        )
        self.info: dict[str, Any] = {}
        self.pid = -1

    def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        """Wait for the process's JSON line; return it."""
        assert self.popen.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.popen.stdout], [], [], 0.1)
            if ready:
                line = self.popen.stdout.readline()
                if line.startswith("{"):
                    self.info = json.loads(line)
                    self.pid = int(self.info["pid"])
                    return self.info
                if line == "" and self.popen.poll() is not None:
                    break
            elif self.popen.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"{self.label} did not start:\n{self.stderr_tail()}")

    def cpu_s(self) -> float:
        """CPU seconds used so far."""
        return cpu_seconds(self.pid)

    def peak_rss_mb(self) -> float:
        """Peak RSS so far, MiB."""
        return peak_rss_mb(self.pid)

    def stderr_tail(self, lines: int = 30) -> str:
        """The end of what the process wrote to stderr."""
        if not self.stderr.closed:
            self.stderr.flush()
        text_ = self.stderr_path.read_text(errors="replace")
        return "\n".join(text_.splitlines()[-lines:])

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the Python process (not to py-spy, which then writes its profile)."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid if self.pid > 0 else self.popen.pid, signum)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (a clean stop); SIGKILL after ``timeout_s``."""
        self.signal(signal.SIGTERM)
        for signum, wait_s in ((signal.SIGKILL, timeout_s), (None, 10.0)):
            try:
                self.popen.wait(wait_s)
                break
            except subprocess.TimeoutExpired:
                if signum is not None:
                    self.signal(signum)
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self.stderr.close()


class ProcessGroup:
    """Processes by role (``procs``) measured together: what every deployment offers."""

    procs: dict[str, Any]

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds of each process so far."""
        return {role: p.cpu_s() for role, p in self.procs.items()}

    def peak_rss_mb(self) -> dict[str, float]:
        """Peak RSS of each process so far (MiB)."""
        return {role: p.peak_rss_mb() for role, p in self.procs.items()}

    def stderr_tails(self) -> str:
        """What the processes wrote to stderr lately (for a failure message)."""
        return "\n".join(f"--- {r}:\n{p.stderr_tail()}" for r, p in self.procs.items())

    def signal_all(self, signum: int) -> None:
        """Send ``signum`` to every process (SIGSTOP / SIGCONT: freeze and thaw in an A/B)."""
        for proc in self.procs.values():
            proc.signal(signum)


class Namespace:
    """A network namespace joined to the root one by a veth pair: "another machine"."""

    def __init__(self, name: str, root_ip: str, own_ip: str) -> None:
        self.name = name
        #: The root namespace's end (where a scheduler on 0.0.0.0 is reached).
        self.root_ip = root_ip
        self.own_ip = own_ip


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


@contextlib.contextmanager
def namespaces(n: int) -> Iterator[list[Namespace]]:
    """``n`` namespaces, each with its own loopback and a veth pair to the root namespace
    (10.78.i.1 here, 10.78.i.2 there); removed afterwards. Needs root and ``ip``."""
    tag = uuid.uuid4().hex[:6]
    made: list[Namespace] = []
    try:
        for i in range(n):
            name, root_end, own_end = f"ppb{tag}{i}", f"pb{tag}{i}r", f"pb{tag}{i}h"
            host = Namespace(name, f"10.78.{i + 1}.1", f"10.78.{i + 1}.2")
            _ip("netns", "add", name)
            made.append(host)
            _ip("link", "add", root_end, "type", "veth", "peer", "name", own_end)
            _ip("link", "set", own_end, "netns", name)
            _ip("addr", "add", f"{host.root_ip}/24", "dev", root_end)
            _ip("link", "set", root_end, "up")
            _ip("-n", name, "addr", "add", f"{host.own_ip}/24", "dev", own_end)
            _ip("-n", name, "link", "set", own_end, "up")
            _ip("-n", name, "link", "set", "lo", "up")
        yield made
    finally:
        for host in made:
            # The namespace's end of the veth goes with it, and takes the root end along.
            subprocess.run(["ip", "netns", "del", host.name], capture_output=True, timeout=10)


def namespaces_unavailable() -> str | None:
    """Why namespaces cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("ip") is None:
        return "no `ip` command"
    return None


class Deployment(ProcessGroup):
    """A scheduler and an executor serving ``spec`` on a database, in ``mode``.

    ``procs`` maps a role to its process: ``"scheduler+executor"`` in one process,
    or ``"scheduler"`` and ``"executor"``.
    """

    def __init__(
        self,
        mode: str,
        spec: dict[str, Any],
        db: Database,
        logs: Path,
        *,
        label: str,
        concurrency: int,
        log_level: str,
        py_spy: Path | None = None,
        py_spy_rate: int = 250,
        start_timeout_s: float = 120.0,
        script: Path = PROCS,
        pythonpath: Path | None = None,
        executors: int = 1,
        hosts: list[Namespace] | None = None,
    ) -> None:
        self.mode = mode
        self.procs: dict[str, Proc] = {}
        common = {
            "log_level": log_level,
            "py_spy": py_spy,
            "py_spy_rate": py_spy_rate,
            "script": script,
            "pythonpath": pythonpath,
        }
        try:
            if mode == "one-process":
                proc = Proc(
                    "local",
                    spec,
                    logs,
                    f"{label}-local",
                    db=db.url,
                    logs_db=db.logs_url,
                    concurrency=concurrency,
                    **common,
                )
                self.procs["scheduler+executor"] = proc
                self.url = proc.wait_ready(start_timeout_s)["url"]
            else:
                sched = Proc(
                    "scheduler",
                    spec,
                    logs,
                    f"{label}-scheduler",
                    db=db.url,
                    logs_db=db.logs_url,
                    host="0.0.0.0" if hosts else None,
                    **common,
                )
                self.procs["scheduler"] = sched
                self.url = sched.wait_ready(start_timeout_s)["url"]
                self.client = ppacer.Client(self.url)
                self.wait_running(start_timeout_s)
                port = self.url.rsplit(":", 1)[1]
                for i in range(executors):
                    role = "executor" if i == 0 else f"executor{i + 1}"
                    # With ``hosts``: executor i in namespace i, reaching the scheduler
                    # over its veth pair, as from another machine.
                    host = hosts[i] if hosts else None
                    ex = Proc(
                        "executor",
                        spec,
                        logs,
                        f"{label}-{role}",
                        url=f"http://{host.root_ip}:{port}" if host else self.url,
                        logs_db=db.logs_url,
                        concurrency=concurrency,
                        prefix=("ip", "netns", "exec", host.name) if host else (),
                        **common,
                    )
                    self.procs[role] = ex
                    ex.wait_ready(start_timeout_s)
            self.client = ppacer.Client(self.url)
            self.wait_running(start_timeout_s)
        except BaseException:
            self.stop()
            raise

    def wait_running(self, timeout_s: float) -> None:
        """Wait until the scheduler answers ``GET /state`` with RUNNING."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.client.get_state() == ppacer.SchedulerState.RUNNING:
                    return
            except PpacerError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the scheduler did not reach RUNNING")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the processes (SIGTERM, then SIGKILL after 2 s)."""
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        # The measurements are taken: stop everything at once, without waiting out the
        # executor's long poll for long.
        for proc in self.procs.values():
            proc.signal(signal.SIGTERM)
        for proc in self.procs.values():
            proc.stop(timeout_s=2.0)

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------- one run


def trigger_and_wait(
    dep: Deployment, db: Database, dag_id: str, timeout_s: float = 600.0
) -> dict[str, float]:
    """Trigger a run of ``dag_id`` and wait for it to finish.

    ``latency_s``: from just before the trigger call (this process's clock) to
    the run's SUCCESS as the database records it (the scheduler's clock: the
    same machine's). ``run_s``: the run's own InsertTs to StatusUpdateTs.
    ``wall_s``: until this process saw the SUCCESS (it polls, so later).
    """
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    run_id = dep.client.trigger_dag_run(dag_id)["runId"]
    deadline = started + timeout_s
    while True:
        row = db.run_row(run_id)
        if row.Status in ("SUCCESS", "FAILED"):
            break
        elapsed = time.perf_counter() - started
        if time.perf_counter() > deadline:
            raise RuntimeError(f"run {run_id} of {dag_id} still {row.Status} after {elapsed:.0f} s")
        # Poll often for short runs, less often for long ones: the figure comes from
        # the database's timestamps, so the poll interval does not change it.
        time.sleep(min(0.02, max(0.002, elapsed / 50)))
    wall = time.perf_counter() - started
    if row.Status != "SUCCESS":
        raise RuntimeError(f"run {run_id} of {dag_id} ended {row.Status}\n{dep.stderr_tails()}")
    done = parse_ts(row.StatusUpdateTs)
    return {
        "latency_s": (done - started_at).total_seconds(),
        "run_s": (done - parse_ts(row.InsertTs)).total_seconds(),
        "wall_s": wall,
    }


@contextlib.contextmanager
def temp_root() -> Iterator[Path]:
    """A temporary directory for databases and process logs."""
    root = Path(tempfile.mkdtemp(prefix="ppacer-bench-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
