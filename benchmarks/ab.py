"""A/B: the same workloads on two or more schedulers, alternating, in one invocation.

    python benchmarks/run.py --vs-original /work/gobuild/bin/ppacer-bench  # vs the Go original
    python benchmarks/run.py --vs-src /tmp/ca465ca                         # vs another tree

A *side* is a scheduler to measure: ours (the ppacer this interpreter imports),
another tree of ppacer (its ``src/`` on ``PYTHONPATH`` and its own
``benchmarks/procs.py``), or the original Go ppacer built by
``shared/peers/ppacer-go/build.sh`` (its ``ppacer-bench`` program). Every side
serves the same latency DAGs on fresh SQLite files; all sides are up at once,
and while one is measured the others are frozen (SIGSTOP), so an idle side's
timers and polls cost the measured one nothing. The repetitions alternate the
sides (A B, then B A, ...), so a change in the machine's load hits all alike.

The trigger is one plain ``http.client`` POST and the run is read from the
side's ``dagruns`` with ``sqlite3``, the same for every side: ``latency_s`` is
the run's ``StatusUpdateTs`` (the scheduler's clock) minus this process's clock
just before the trigger call, as in ``harness.trigger_and_wait``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import PROCS, Database, Deployment, ProcessGroup, cpu_seconds, peak_rss_mb

import ppacer
from ppacer.timeutils import parse_ts

#: Pause after a frozen side is thawed, before it is measured: its overdue timers run
#: and its executor's long poll is answered first.
SETTLE_S = 0.3


@dataclass(frozen=True)
class Side:
    """A scheduler to measure: ``kind`` "ppacer" (``src`` None: this interpreter's) or
    "original" (the Go ``binary``)."""

    label: str
    kind: str
    src: Path | None = None
    script: Path = PROCS
    binary: Path | None = None


def ours() -> Side:
    """The ppacer this interpreter imports (this tree's src, normally)."""
    return Side("ours", "ppacer")


def other_tree(root: Path) -> Side:
    """Another tree of ppacer: its ``src/`` and, if it has one, its ``benchmarks/procs.py``."""
    root = root.resolve()
    script = root / "benchmarks" / "procs.py"
    return Side(root.name, "ppacer", src=root / "src", script=script if script.exists() else PROCS)


def original(binary: Path) -> Side:
    """The original Go ppacer's benchmark program (``ppacer-bench``)."""
    return Side("original", "original", binary=binary.resolve())


# ---------------------------------------------------------------------- processes


class _Plain:
    """A process that is not ours (the Go program): started, stopped, read from /proc."""

    def __init__(self, cmd: list[str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        self.stderr = open(stderr_path, "w")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
            start_new_session=True,
        )
        self.pid = self.popen.pid

    def cpu_s(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.pid)

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def stderr_tail(self, lines: int = 30) -> str:
        self.stderr.flush()
        return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout_s: float = 5.0) -> None:
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(5)
        self.stderr.close()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the Go program takes a port number)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_state(url: str, timeout_s: float, *, want: str | None = "RUNNING") -> float:
    """Poll ``GET /state`` every 5 ms until it answers 200 (with ``want``, that state);
    return the seconds waited."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    started = time.perf_counter()
    deadline = started + timeout_s
    while time.perf_counter() < deadline:
        conn = http.client.HTTPConnection(host, int(port), timeout=2)
        try:
            conn.request("GET", "/state")
            answer = conn.getresponse()
            body = answer.read()
            if answer.status == 200 and (want is None or json.loads(body).get("state") == want):
                return time.perf_counter() - started
        except (OSError, http.client.HTTPException, ValueError):
            pass
        finally:
            conn.close()
        time.sleep(0.005)
    raise RuntimeError(f"{url}/state did not answer {want or 200} within {timeout_s} s")


class OriginalDeployment(ProcessGroup):
    """The Go original serving the latency DAGs ``names`` on ``db``'s directory.

    One process (``-role all``, the original's ``DefaultStarted``) or a scheduler
    and an executor process.
    """

    def __init__(
        self, binary: Path, mode: str, names: list[str], db: Database, logs: Path, label: str
    ) -> None:
        self.mode = mode
        self.procs: dict[str, _Plain] = {}
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        common = ["-dir", str(db.dir), "-port", str(port), "-dags", ",".join(names)]
        try:
            if mode == "one-process":
                self.procs["scheduler+executor"] = _Plain(
                    [str(binary), "-role", "all", *common], logs / f"{label}-go-all.stderr"
                )
                wait_state(self.url, 60)
            else:
                self.procs["scheduler"] = _Plain(
                    [str(binary), "-role", "scheduler", *common],
                    logs / f"{label}-go-scheduler.stderr",
                )
                wait_state(self.url, 60)
                self.procs["executor"] = _Plain(
                    [
                        str(binary),
                        "-role",
                        "executor",
                        "-url",
                        self.url,
                        "-logs-db",
                        str(db.dir / "logs.db"),
                        "-dags",
                        ",".join(names),
                    ],
                    logs / f"{label}-go-executor.stderr",
                )
                time.sleep(0.2)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()


AnyDeployment = Deployment | OriginalDeployment


@contextlib.contextmanager
def deploy(
    side: Side,
    mode: str,
    names: list[str],
    db: Database,
    logs: Path,
    *,
    concurrency: int,
    log_level: str,
) -> Iterator[AnyDeployment]:
    """``side`` serving the latency DAGs ``names`` on ``db`` in ``mode``; stopped after."""
    label = f"ab-{side.label}-{'one' if mode == 'one-process' else 'sep'}"
    dep: AnyDeployment
    if side.kind == "original":
        assert side.binary is not None
        dep = OriginalDeployment(side.binary, mode, names, db, logs, label)
    else:
        dep = Deployment(
            mode,
            {"kind": "latency", "names": names},
            db,
            logs,
            label=label,
            concurrency=concurrency,
            log_level=log_level,
            script=side.script,
            pythonpath=side.src,
        )
    try:
        yield dep
    finally:
        dep.signal_all(signal.SIGCONT)
        dep.stop()


# ---------------------------------------------------------------------- one run


class RunReader:
    """Reads a side's ``dagruns`` with ``sqlite3`` (the same for every side)."""

    def __init__(self, db_file: Path) -> None:
        self.conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=5)

    def max_run_id(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(MAX(RunId), 0) FROM dagruns").fetchone()[0])

    def run_after(self, dag_id: str, after: int) -> tuple[Any, ...] | None:
        """(RunId, Status, InsertTs, StatusUpdateTs) of ``dag_id``'s first run past ``after``."""
        row = self.conn.execute(
            "SELECT RunId, Status, InsertTs, StatusUpdateTs FROM dagruns "
            "WHERE DagId = ? AND RunId > ? ORDER BY RunId LIMIT 1",
            (dag_id, after),
        ).fetchone()
        return tuple(row) if row is not None else None

    def close(self) -> None:
        self.conn.close()


def trigger(url: str, dag_id: str) -> None:
    """``POST /dag/run/trigger {"dagId": dag_id}`` on a fresh connection; raise unless 2xx."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        body = json.dumps({"dagId": dag_id})
        conn.request("POST", "/dag/run/trigger", body, {"Content-Type": "application/json"})
        answer = conn.getresponse()
        text = answer.read()
        if answer.status >= 300:
            raise RuntimeError(f"trigger {dag_id} at {url}: {answer.status} {text[:200]!r}")
    finally:
        conn.close()


def trigger_and_wait(
    url: str, reader: RunReader, dag_id: str, timeout_s: float = 300.0
) -> dict[str, float]:
    """Trigger ``dag_id`` and wait for its run to end: ``latency_s``, ``run_s``, ``wall_s``."""
    after = reader.max_run_id()
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    trigger(url, dag_id)
    while True:
        row = reader.run_after(dag_id, after)
        elapsed = time.perf_counter() - started
        if row is not None and row[1] in ("SUCCESS", "FAILED"):
            break
        if elapsed > timeout_s:
            raise RuntimeError(f"a run of {dag_id} at {url}: not done after {elapsed:.0f} s")
        time.sleep(min(0.02, max(0.002, elapsed / 50)))
    wall = time.perf_counter() - started
    _, status, insert_ts, done_ts = row
    if status != "SUCCESS":
        raise RuntimeError(f"run {row[0]} of {dag_id} at {url} ended {status}")
    done = parse_ts(done_ts)
    return {
        "latency_s": (done - started_at).total_seconds(),
        "run_s": (done - parse_ts(insert_ts)).total_seconds(),
        "wall_s": wall,
    }


# ---------------------------------------------------------------------- footprint


def start_footprint(
    side: Side, workdir: Path, logs: Path, label: str, *, settle_s: float = 5.0
) -> dict[str, float]:
    """Start a side's default one-process deployment and measure its footprint.

    Ours: ``python -m ppacer run ppacer.examples.hello`` (the README's first
    command) in an empty directory. The original: ``ppacer-bench -role all``
    (its benchmark DAGs, no schedules). ``start_s``: from starting the process
    to ``GET /state`` answering 200 (polled every 5 ms); ``idle_rss_mb``: VmRSS
    ``settle_s`` later; ``peak_rss_mb``: VmHWM then; ``cpu_s``: CPU used by then.
    """
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    if side.kind == "original":
        assert side.binary is not None
        cmd = [str(side.binary), "-role", "all", "-dir", str(workdir), "-port", str(port)]
    else:
        cmd = [sys.executable, "-m", "ppacer", "run", "ppacer.examples.hello"]
        cmd += ["--port", str(port)]
    env = {**os.environ}
    if side.src is not None:
        env["PYTHONPATH"] = str(side.src)
    if side.kind == "ppacer":
        compile_package(side)
    with open(logs / f"{label}.stderr", "w") as err:
        started = time.perf_counter()
        popen = subprocess.Popen(
            cmd,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            start_new_session=True,
        )
        try:
            wait_state(f"http://127.0.0.1:{port}", 60, want=None)
            start_s = time.perf_counter() - started
            time.sleep(settle_s)
            rss = _status_mb(popen.pid, "VmRSS")
            hwm = _status_mb(popen.pid, "VmHWM")
            cpu = cpu_seconds(popen.pid)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(popen.pid, signal.SIGTERM)
            try:
                popen.wait(15)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(5)
    return {"start_s": start_s, "idle_rss_mb": rss, "peak_rss_mb": hwm, "cpu_s": cpu}


def compile_package(side: Side) -> None:
    """Write the bytecode of a side's ``ppacer`` package, as ``pip install`` leaves it.

    An editable install under ``PYTHONDONTWRITEBYTECODE=1`` (this machine's default)
    never caches bytecode, so each start would compile ppacer's modules from source
    (about 0.1 s here) while the libraries start from the bytecode pip wrote.
    """
    package = (side.src / "ppacer") if side.src is not None else Path(ppacer.__file__).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


def _status_mb(pid: int, key: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")
