"""Data behind the ``/ui/...`` endpoints: run statistics, latest runs, run and task details."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from ppacer.dag.status import DagRunStatus, TaskStatus
from ppacer.db import dagruns as runs_db
from ppacer.db import dagruntasks as tasks_db
from ppacer.db.dags import read_task_source
from ppacer.db.tasklogs import read_task_log_lines
from ppacer.errors import NotFoundError
from ppacer.timeutils import parse_ts

if TYPE_CHECKING:
    from ppacer.scheduler.server import Scheduler

__all__ = ["dagrun_details", "dagrun_latest", "dagrun_stats", "dagrun_task_details"]

_RUN_KEYS = {
    DagRunStatus.SUCCESS: "success",
    DagRunStatus.FAILED: "failed",
    DagRunStatus.SCHEDULED: "scheduled",
    DagRunStatus.READY_TO_SCHEDULE: "scheduled",
    DagRunStatus.RUNNING: "running",
}
_TASK_KEYS = {
    TaskStatus.SUCCESS: "success",
    TaskStatus.FAILED: "failed",
    TaskStatus.UPSTREAM_FAILED: "failed",
    TaskStatus.SCHEDULED: "scheduled",
    TaskStatus.FAILED_PENDING_RETRY: "scheduled",
    TaskStatus.RUNNING: "running",
}


def _duration(start: str, end: str) -> str:
    seconds = (parse_ts(end) - parse_ts(start)).total_seconds()
    return f"{seconds:.3f}s"


def dagrun_stats(scheduler: Scheduler) -> dict[str, Any]:
    """Counts of runs and task attempts by status, and queue lengths."""
    with scheduler.engine.connect() as conn:
        runs = runs_db.count_dag_runs_by_status(conn)
        tasks = tasks_db.count_tasks_by_status(conn)
    run_counts = dict.fromkeys(("success", "failed", "scheduled", "running"), 0)
    for status, count in runs.items():
        run_counts[_RUN_KEYS[DagRunStatus(status)]] += count
    task_counts = dict.fromkeys(("success", "failed", "scheduled", "running"), 0)
    for status, count in tasks.items():
        key = _TASK_KEYS.get(TaskStatus(status))
        if key is not None:
            task_counts[key] += count
    ts = scheduler.task_scheduler
    return {
        "dagruns": run_counts,
        "dagrunTasks": task_counts,
        "dagrunQueueLen": scheduler.watcher.queue.qsize() if scheduler.watcher else 0,
        "taskSchedulerQueueLen": len(ts.ready) if ts else 0,
        "goroutinesNum": threading.active_count(),
    }


def dagrun_latest(scheduler: Scheduler, n: int) -> list[dict[str, Any]]:
    """The ``n`` latest runs, newest first, with how many of their tasks completed."""
    with scheduler.engine.connect() as conn:
        runs = runs_db.read_latest_dag_runs(conn, n)
        counts = tasks_db.count_tasks_by_run(conn, [r.run_id for r in runs])
    out = []
    for run in runs:
        dag = scheduler.registry.get(run.dag_id)
        by_status = counts.get(run.run_id, {})
        out.append(
            {
                "runId": run.run_id,
                "dagId": run.dag_id,
                "execTs": run.exec_ts,
                "insertTs": run.insert_ts,
                "status": str(run.status),
                "statusUpdateTs": run.status_update_ts,
                "duration": _duration(run.insert_ts, run.status_update_ts),
                "taskNum": len(dag.tasks) if dag is not None else sum(by_status.values()),
                "taskCompletedNum": sum(
                    c for s, c in by_status.items() if TaskStatus(s).is_terminal
                ),
            }
        )
    return out


def _task_entries(scheduler: Scheduler, run: runs_db.DagRunRow) -> list[dict[str, Any]]:
    with scheduler.engine.connect() as conn:
        attempts = tasks_db.read_dag_run_tasks(conn, run.dag_id, run.exec_ts)
        errors = tasks_db.read_task_errors(conn, run.dag_id, run.exec_ts)
        sources = {}
        for tid in dict.fromkeys(a.task_id for a in attempts):
            row = read_task_source(conn, run.dag_id, tid, run.insert_ts)
            if row is not None:
                sources[tid] = row
    entries = []
    for a in attempts:
        src = sources.get(a.task_id)
        entries.append(
            {
                "taskId": a.task_id,
                "retry": a.retry,
                "insertTs": a.insert_ts,
                "status": str(a.status),
                "statusUpdateTs": a.status_update_ts,
                "pos": {
                    "depth": src.pos_depth if src else 0,
                    "width": src.pos_width if src else 0,
                },
                "duration": _duration(a.insert_ts, a.status_update_ts),
                "config": json.loads(src.config) if src else {},
                "taskTypeName": src.type_name if src else "",
                "taskError": errors.get((a.task_id, a.retry)),
            }
        )
    dag = scheduler.registry.get(run.dag_id)
    started = {a.task_id for a in attempts}
    for info in dag.tasks.values() if dag is not None else ():
        if info.task_id not in started:
            entries.append(
                {
                    "taskId": info.task_id,
                    "retry": 0,
                    "insertTs": None,
                    "status": str(TaskStatus.NO_STATUS),
                    "statusUpdateTs": None,
                    "pos": {"depth": info.depth, "width": info.width},
                    "duration": None,
                    "config": json.loads(info.config.to_json()),
                    "taskTypeName": "",
                    "taskError": None,
                }
            )
    entries.sort(key=lambda e: (e["pos"]["depth"], e["pos"]["width"], e["retry"]))
    return entries


def _logs(scheduler: Scheduler, run: runs_db.DagRunRow, task_id: str, retry: int) -> dict[str, Any]:
    if scheduler.logs_engine is None:
        return {"loadedRecords": 0, "records": []}
    with scheduler.logs_engine.connect() as conn:
        records = read_task_log_lines(
            conn, run.dag_id, run.exec_ts, task_id, retry, limit=1_000_000
        )
    return {
        "loadedRecords": len(records),
        "records": [
            {
                "insertTs": r.insert_ts,
                "level": r.level,
                "message": r.message,
                "attributes": r.attributes,
            }
            for r in records
        ],
    }


def _run_or_404(scheduler: Scheduler, run_id: int) -> runs_db.DagRunRow:
    with scheduler.engine.connect() as conn:
        run = runs_db.read_dag_run(conn, run_id)
    if run is None:
        raise NotFoundError(f"runId: no DAG run {run_id}")
    return run


def dagrun_details(scheduler: Scheduler, run_id: int) -> dict[str, Any]:
    """A run with every task attempt, its config, error and logs."""
    run = _run_or_404(scheduler, run_id)
    tasks = _task_entries(scheduler, run)
    for entry in tasks:
        entry["taskLogs"] = _logs(scheduler, run, entry["taskId"], entry["retry"])
    return {
        "runId": run.run_id,
        "dagId": run.dag_id,
        "execTs": run.exec_ts,
        "execTsRaw": run.exec_ts,
        "status": str(run.status),
        "insertTs": run.insert_ts,
        "statusUpdateTs": run.status_update_ts,
        "duration": _duration(run.insert_ts, run.status_update_ts),
        "tasks": tasks,
    }


def dagrun_task_details(
    scheduler: Scheduler, run_id: int, task_id: str, retry: int
) -> dict[str, Any]:
    """One task attempt of a run, with its source code at the version that ran, and its logs."""
    run = _run_or_404(scheduler, run_id)
    for entry in _task_entries(scheduler, run):
        if entry["taskId"] == task_id and entry["retry"] == retry:
            with scheduler.engine.connect() as conn:
                src = read_task_source(conn, run.dag_id, task_id, run.insert_ts)
            entry["taskLogs"] = _logs(scheduler, run, task_id, retry)
            entry["taskBodySource"] = src.body_source if src else ""
            entry["dagId"] = run.dag_id
            entry["execTs"] = run.exec_ts
            entry["runId"] = run.run_id
            return entry
    raise NotFoundError(f"DAG run {run_id} has no attempt {retry} of task {task_id!r}")
