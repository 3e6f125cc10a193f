"""A scheduler's history written straight into its databases: big states without real runs.

:func:`seed_history` writes ``runs`` finished runs of a DAG as a scheduler that
ran for a while leaves them: attempts queued, taken by an executor and ended
(retries, failures with their downstream UPSTREAM_FAILED, errors), run
parameters, and log lines (through the logs DB's full-text index). Rows go in
with multi-row statements: 1,000 runs of 50 tasks take about two seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

import ppacer
from ppacer.dag.status import DagRunStatus, TaskStatus
from ppacer.dag.task import task_type_name
from ppacer.db import schema
from ppacer.db.engine import open_logs_db, open_scheduler_db
from ppacer.db.schema import dagrunparams, dagruns, dagruntaskerrors, dagruntasks, tasklogs
from ppacer.timeutils import format_ts

T0 = datetime(2024, 3, 11, tzinfo=UTC)
#: A secret a task logged by mistake (tests check it never reaches a page).
LEAKED_URL = "postgresql://etl:hunter2@db.example.com/warehouse"


def seed_history(
    db: Path,
    logs_db: Path | None,
    dag: ppacer.Dag,
    runs: int,
    *,
    failed_every: int = 10,
    retried_every: int = 7,
    every: timedelta = timedelta(minutes=10),
    start: datetime = T0,
    params: Callable[[int], dict[str, Any] | None] | None = None,
    lines_per_task: int = 1,
    first_run_id: int = 1,
) -> None:
    """Write ``runs`` finished runs of ``dag``, RunIds from ``first_run_id`` on."""
    order = [i.task_id for i in sorted(dag.tasks.values(), key=lambda i: (i.depth, i.width))]
    breaker = order[len(order) // 2]
    broken = {breaker, *dag.descendants(breaker)}
    retried = order[1] if len(order) > 1 else order[0]
    run_rows, task_rows, errors, given, lines = [], [], [], [], []
    for i in range(runs):
        at = start + i * every
        exec_ts = format_ts(at)
        failed = bool(failed_every) and i % failed_every == failed_every - 1
        retry_here = bool(retried_every) and i % retried_every == 3
        end = at
        # A task is queued as its parents end (milliseconds later), as the scheduler does.
        ended: dict[str, datetime] = {}
        for task_id in order:
            parents = dag.tasks[task_id].parents
            scheduled = max((ended[p] for p in parents), default=at) + timedelta(milliseconds=8)
            attempts = [(0, TaskStatus.SUCCESS)]
            if retry_here and task_id == retried:
                attempts = [(0, TaskStatus.FAILED_PENDING_RETRY), (1, TaskStatus.SUCCESS)]
            if failed and task_id == breaker:
                attempts = [(0, TaskStatus.FAILED)]
            elif failed and task_id in broken:
                attempts = [(0, TaskStatus.UPSTREAM_FAILED)]
            for retry, status in attempts:
                taken = scheduled + timedelta(milliseconds=150 + 37 * (i % 9))
                done = taken + timedelta(milliseconds=400 + 97 * ((i + len(task_id)) % 13))
                ran = status is not TaskStatus.UPSTREAM_FAILED
                if not ran:
                    taken = done = scheduled
                task_rows.append(
                    {
                        "DagId": dag.id,
                        "ExecTs": exec_ts,
                        "TaskId": task_id,
                        "Retry": retry,
                        "InsertTs": format_ts(scheduled),
                        "Status": str(status),
                        "StatusUpdateTs": format_ts(done),
                        "Version": "seed",
                        "StartTs": format_ts(taken) if ran else None,
                        "Executor": f"worker-{1 + (i + retry) % 3}" if ran else None,
                        "CodeVersion": dag.tasks[task_id].code_version if ran else None,
                    }
                )
                if status in (TaskStatus.FAILED, TaskStatus.FAILED_PENDING_RETRY):
                    errors.append(
                        {
                            "DagId": dag.id,
                            "ExecTs": exec_ts,
                            "TaskId": task_id,
                            "Retry": retry,
                            "InsertTs": format_ts(done),
                            "Error": f"ConnectionError: connection refused by db.example.com "
                            f"(run {i + 1})",
                        }
                    )
                if ran and logs_db is not None:
                    lines += _lines(
                        dag.id, exec_ts, task_id, retry, status, taken, i, lines_per_task
                    )
                end = max(end, done)
                ended[task_id] = done
                # A retry waits out its delay (time neither queued nor running).
                scheduled = done + timedelta(seconds=2)
        status = DagRunStatus.FAILED if failed else DagRunStatus.SUCCESS
        run_rows.append(
            {
                "RunId": first_run_id + i,
                "DagId": dag.id,
                "ExecTs": exec_ts,
                "InsertTs": exec_ts,
                "Status": str(status),
                "StatusUpdateTs": format_ts(end),
                "Version": "seed",
            }
        )
        chosen = params(i) if params is not None else None
        if chosen:
            given.append({"RunId": first_run_id + i, "Params": json.dumps(chosen)})
    # How attempts started: in their own table where the schema has one (the original's
    # dagruntasks columns stay as they were), else in dagruntasks.
    starts_table = schema.metadata.tables.get("dagruntaskstarts")
    starts = []
    if starts_table is not None:
        start_columns = ("StartTs", "Executor", "CodeVersion")
        for row in task_rows:
            values = {k: row.pop(k) for k in start_columns}
            if values["StartTs"] is not None:
                starts.append({k: row[k] for k in ("DagId", "ExecTs", "TaskId", "Retry")} | values)
    engine = open_scheduler_db(str(db))
    try:
        with engine.begin() as conn:
            conn.execute(insert(dagruns), run_rows)
            conn.execute(insert(dagruntasks), task_rows)
            if starts_table is not None and starts:
                conn.execute(insert(starts_table), starts)
            if errors:
                conn.execute(insert(dagruntaskerrors), errors)
            if given:
                conn.execute(insert(dagrunparams), given)
    finally:
        engine.dispose()
    if logs_db is not None and lines:
        logs = open_logs_db(str(logs_db))
        try:
            with logs.begin() as conn:
                conn.execute(insert(tasklogs), lines)
        finally:
            logs.dispose()


def _lines(
    dag_id: str,
    exec_ts: str,
    task_id: str,
    retry: int,
    status: TaskStatus,
    taken: datetime,
    run: int,
    per_task: int,
) -> list[dict[str, Any]]:
    """Log lines of one attempt: INFO progress, a WARNING now and then, the ERROR of a failure."""
    out = []
    texts = [
        ("INFO", f"{task_id}: processed {1000 + 17 * run} rows of batch {run + 1}"),
        ("DEBUG", f"{task_id}: cursor.execute took 0.{run % 10}3s"),
        ("WARNING", f"{task_id}: timeout after 30s waiting for lock; retrying (run {run + 1})"),
        ("INFO", f"{task_id}: connecting to {LEAKED_URL}"),
    ]
    for n in range(per_task):
        level, message = texts[0] if n == 0 else texts[(n + run) % len(texts)]
        out.append((level, message))
    if status in (TaskStatus.FAILED, TaskStatus.FAILED_PENDING_RETRY):
        out.append(("ERROR", f"{task_id} failed: connection refused by db.example.com"))
    return [
        {
            "DagId": dag_id,
            "ExecTs": exec_ts,
            "TaskId": task_id,
            "Retry": retry,
            "InsertTs": format_ts(taken + timedelta(milliseconds=5 * k)),
            "Level": level,
            "Message": message,
            "Attributes": json.dumps({"run": run + 1}),
            "Seq": k,
        }
        for k, (level, message) in enumerate(out)
    ]


def wide_dag(dag_id: str = "wide", width: int = 48, **kwargs: Any) -> ppacer.Dag:
    """``extract`` -> ``width`` parallel tasks -> ``report``: 50 tasks by default."""
    from tests.ui.conftest import Quick

    root = ppacer.Node(Quick("extract"))
    root.next_async_and_merge([Quick(f"load_{i:02d}") for i in range(width)], Quick("report"))
    return ppacer.Dag(dag_id, **kwargs).add_root(root).done()


def seed_old_version(
    db: Path, dag: ppacer.Dag, task_id: str, source: str, at: datetime = T0 - timedelta(days=3)
) -> None:
    """Store an older version of a task (``IsCurrent = 0``, stored ``at``), as a changed DAG
    file leaves it: another source, one more retry in its config."""
    info = dag.tasks[task_id]
    config = json.loads(info.config.to_json())
    config["retries"] = config.get("retries", 0) + 1
    engine = open_scheduler_db(str(db))
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(schema.dagtasks),
                {
                    "DagId": dag.id,
                    "TaskId": task_id,
                    "IsCurrent": 0,
                    "InsertTs": format_ts(at),
                    "PosDepth": info.depth,
                    "PosWidth": info.width,
                    "Version": "seed",
                    "TaskTypeName": task_type_name(info.task),
                    "TaskConfig": json.dumps(config, sort_keys=True),
                    "TaskBodyHash": "old",
                    "TaskBodySource": source,
                    "CodeVersion": "0ldc0de",
                },
            )
    finally:
        engine.dispose()
