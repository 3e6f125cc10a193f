"""The getting-started page in Python: run examples/hello.py, Ctrl-C it, query its DBs."""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from ppacer.timeutils import parse_ts
from tests.conftest import query, wait_for

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello.py"


def finished_runs(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        return len(query(db, "SELECT RunId FROM dagruns WHERE Status='SUCCESS'"))
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def test_hello_world_then_the_seed_queries(tmp_path):
    env = {
        **os.environ,
        "PPACER_HELLO_INTERVAL_S": "0.5",  # the seed's 10 s, made fast by the test
        "PPACER_PORT": "0",
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, str(HELLO)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    db = tmp_path / "scheduler.db"
    try:
        wait_for(lambda: finished_runs(db) >= 3 or proc.poll() is not None, 60, "3 runs")
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "Finished syncing DAG registry with dags and dagtasks tables" in err
    assert " >>> PrintTask <<<: start" in out
    assert out.index(" >>> PrintTask <<<: start") < out.index(" >>> PrintTask <<<: finish")

    (dag,) = query(db, "SELECT DagId, StartTs, Schedule, CreateTs FROM dags")
    assert dag["DagId"] == "example"
    assert dag["StartTs"] == "2024-03-11T12:00:00.000000UTC+00:00"
    assert dag["Schedule"] == "FixedSchedule: 500ms"  # Go's Duration form, as the original
    parse_ts(dag["CreateTs"])

    runs = query(db, "SELECT * FROM dagruns")
    assert list(runs[0].keys()) == [
        "RunId", "DagId", "ExecTs", "InsertTs", "Status", "StatusUpdateTs", "Version"
    ]  # fmt: skip
    assert len(runs) >= 3
    # Ctrl-C may come in the middle of the last run: it is left unfinished (not failed)
    # and is completed on the next start.
    assert all(r["Status"] == "SUCCESS" for r in runs[:-1])
    assert runs[-1]["Status"] in ("SUCCESS", "RUNNING", "SCHEDULED", "READY_TO_SCHEDULE")
    runs = [r for r in runs if r["Status"] == "SUCCESS"]
    stamps = [parse_ts(r["ExecTs"]) for r in runs]
    assert all((b - a).total_seconds() == 0.5 for a, b in itertools.pairwise(stamps))

    tasks = query(db, "SELECT * FROM dagruntasks")
    assert list(tasks[0].keys()) == [
        "DagId", "ExecTs", "TaskId", "Retry", "InsertTs", "Status", "StatusUpdateTs", "Version"
    ]  # fmt: skip
    for run in runs:
        per_run = [t for t in tasks if t["ExecTs"] == run["ExecTs"]]
        assert sorted(t["TaskId"] for t in per_run) == ["finish", "start"]
        assert {t["Status"] for t in per_run} == {"SUCCESS"}

    meta = query(db, "SELECT DagId, TaskId, IsCurrent, InsertTs, TaskTypeName FROM dagtasks")
    assert sorted((m["DagId"], m["TaskId"], m["IsCurrent"], m["TaskTypeName"]) for m in meta) == [
        ("example", "finish", 1, "PrintTask"),
        ("example", "start", 1, "PrintTask"),
    ]
    sources = query(db, "SELECT DagId, TaskId, IsCurrent, TaskBodySource FROM dagtasks")
    for row in sources:
        assert row["TaskBodySource"].startswith("def execute(self, ctx")
        assert 'print(f" >>> PrintTask <<<: {self.task_id}"' in row["TaskBodySource"]
    (body_hash,) = {r["TaskBodyHash"] for r in query(db, "SELECT TaskBodyHash FROM dagtasks")}
    assert body_hash == hashlib.sha256(sources[0]["TaskBodySource"].encode()).hexdigest()

    logs = query(tmp_path / "logs.db", "SELECT * FROM tasklogs WHERE Message='PrintTask finished!'")
    assert len(logs) >= 2 * len(runs)
    assert {row["Level"] for row in logs} == {"INFO"}
