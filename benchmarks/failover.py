"""Takeover time of a standby scheduler, and the cost of fencing each write.

    python benchmarks/failover.py                 # 10 SIGKILLs, then the fencing A/B
    python benchmarks/failover.py --kills 20 --only takeover
    python benchmarks/failover.py --only fencing --rounds 7

``takeover``: two ``ppacer scheduler`` processes on one fresh PostgreSQL
database (the leader and a standby, default settings), two ``ppacer executor``
processes given both URLs, a 200-task DAG (tasks of 0.1 s). Each round
triggers a run, SIGKILLs the leader once 60 tasks succeeded, restarts it (as
the standby), and waits for the run. Per kill: seconds from the kill to the new
leader's ``/healthz`` saying leader, and to the first task it handed out
(``dagruntaskstarts.StartTs``); attempts that ran twice (every task appends a
line when it runs). ``fencing``: the median time of a small write transaction
on the same server with the leader's fencing check and without, alternated
A B A B in one run.

Output: one JSON line per figure, then the medians and worst cases.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ppacer.api.client import Client  # noqa: E402
from ppacer.db.engine import database_url, open_scheduler_db  # noqa: E402
from ppacer.scheduler.leadership import LeaderLease  # noqa: E402
from ppacer.timeutils import parse_ts  # noqa: E402

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DAGS = "tests.reliability.ha_dags"
_PPACER = (sys.executable, "-m", "ppacer")
_FOUR = ("--concurrency", "4")


def emit(metric: str, value: float, unit: str, **extra: Any) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 4), "unit": unit, **extra}))


class Database:
    """A fresh database on the server, dropped at the end."""

    def __init__(self, admin: str) -> None:
        self.name = f"ppacer_bench_{uuid.uuid4().hex[:10]}"
        self.admin = create_engine(database_url(admin), isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = admin.rsplit("/", 1)[0] + "/" + self.name

    def drop(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _role(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            body = json.load(answer)
    except urllib.error.HTTPError as exc:
        body = json.load(exc)
    except OSError:
        return None
    role: str | None = body["checks"].get("role")
    return role


def _wait(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return value


def takeover(admin: str, kills: int) -> None:
    db = Database(admin)
    work = Path(tempfile.mkdtemp(prefix="ppacer-failover-"))
    ran = work / "ran.txt"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PPACER_")},
        "PYTHONPATH": str(ROOT),
        "PPACER_TEST_RAN": str(ran),
        "PPACER_LOG_LEVEL": "WARNING",
    }
    ports = {"a": _port(), "b": _port()}
    urls = ",".join(f"http://127.0.0.1:{p}" for p in ports.values())
    procs: dict[str, subprocess.Popen[bytes]] = {}
    log = (work / "processes.log").open("ab")

    def start(name: str) -> None:
        procs[name] = subprocess.Popen(
            [*_PPACER, "scheduler", DAGS, "--db", db.url, "--port", str(ports[name])],
            env=env,
            cwd=work,
            stdout=log,
            stderr=log,
        )
        _wait(lambda: _role(ports[name]) is not None, 30, f"scheduler {name}")

    engine = create_engine(database_url(db.url))
    executors = []
    try:
        start("a")
        _wait(lambda: _role(ports["a"]) == "leader", 30, "a to lead")
        start("b")
        for i in range(2):
            executors.append(
                subprocess.Popen(
                    [*_PPACER, "executor", DAGS, "--url", urls, "--name", f"e{i}", *_FOUR],
                    env=env,
                    cwd=work,
                    stdout=log,
                    stderr=log,
                )
            )
        client = Client(urls)
        leader, standby = "a", "b"
        to_leader, to_task = [], []
        for kill in range(kills):
            _wait(lambda s=standby: _role(ports[s]) == "standby", 30, "the standby")
            exec_ts = client.trigger_dag_run("wide")["execTs"]

            def successes(ts: str = exec_ts) -> int:
                with engine.connect() as conn:
                    return int(
                        conn.execute(
                            text(
                                'SELECT count(*) FROM dagruntasks WHERE "ExecTs" = :ts '
                                "AND \"Status\" = 'SUCCESS'"
                            ),
                            {"ts": ts},
                        ).scalar_one()
                    )

            _wait(lambda: successes() >= 60, 60, "60 tasks")
            killed_at = datetime.now().astimezone()
            killed_mono = time.monotonic()
            procs[leader].send_signal(signal.SIGKILL)
            procs[leader].wait()
            _wait(lambda s=standby: _role(ports[s]) == "leader", 30, "the takeover")
            to_leader.append(time.monotonic() - killed_mono)
            _wait(lambda: successes() == 200, 120, "the run")
            with engine.connect() as conn:
                starts = conn.execute(
                    text('SELECT "StartTs" FROM dagruntaskstarts WHERE "ExecTs" = :ts'),
                    {"ts": exec_ts},
                ).scalars()
                first = min(t for t in map(parse_ts, starts) if t > killed_at)
            to_task.append((first - killed_at).total_seconds())
            emit("kill_to_leader_s", to_leader[-1], "s", kill=kill)
            emit("kill_to_first_task_s", to_task[-1], "s", kill=kill)
            start(leader)
            leader, standby = standby, leader
        counts = Counter(tuple(line.split()[:2]) for line in ran.read_text().splitlines())
        reruns = sum(n - 1 for n in counts.values())
        emit("attempts_run_twice", reruns, "attempts", kills=kills, tasks=sum(counts.values()))
        client.close()
        print(
            f"takeover over {kills} SIGKILLs: to leader median {statistics.median(to_leader):.2f}s "
            f"worst {max(to_leader):.2f}s; to first task median {statistics.median(to_task):.2f}s"
            f" worst {max(to_task):.2f}s; attempts run twice: {reruns} of {len(counts)} tasks",
            file=sys.stderr,
        )
    finally:
        for proc in [*executors, *procs.values()]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*executors, *procs.values()]:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        engine.dispose()
        log.close()
        db.drop()


def fencing(admin: str, rounds: int, transactions: int) -> None:
    db = Database(admin)
    try:
        plain = open_scheduler_db(db.url)
        fenced = open_scheduler_db(db.url)
        lease = LeaderLease(fenced, instance="bench", url=None, code_hash="bench", ttl_s=600.0)
        assert lease.try_acquire() is not None
        lease.fence()
        for engine in (plain, fenced):
            with engine.begin() as conn:
                conn.execute(text("CREATE TABLE IF NOT EXISTS bench (id serial, v text)"))

        def one_round(engine: Any) -> float:
            started = time.perf_counter()
            for i in range(transactions):
                with engine.begin() as conn:
                    conn.execute(text("INSERT INTO bench (v) VALUES (:v)"), {"v": str(i)})
            return (time.perf_counter() - started) / transactions * 1e6

        one_round(plain), one_round(fenced)  # warm both pools
        plain_us, fenced_us = [], []
        for _ in range(rounds):
            plain_us.append(one_round(plain))
            fenced_us.append(one_round(fenced))
        a, b = statistics.median(plain_us), statistics.median(fenced_us)
        emit("write_tx_us", a, "us", fencing=False, rounds=rounds, transactions=transactions)
        emit("write_tx_us", b, "us", fencing=True, rounds=rounds, transactions=transactions)
        print(
            f"write transaction: {a:.0f} us without fencing, {b:.0f} us with "
            f"(+{b - a:.0f} us, x{b / a:.2f}); medians of {rounds} A/B rounds of {transactions}",
            file=sys.stderr,
        )
        lease.close()
        plain.dispose()
        fenced.dispose()
    finally:
        db.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin", default=ADMIN, help="PostgreSQL URL to create databases on")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--transactions", type=int, default=1000)
    parser.add_argument("--only", choices=["takeover", "fencing"])
    args = parser.parse_args()
    if args.only in (None, "takeover"):
        takeover(args.admin, args.kills)
    if args.only in (None, "fencing"):
        fencing(args.admin, args.rounds, args.transactions)


if __name__ == "__main__":
    main()
