"""What a command says when a run or a backfill it waited for has ended.

``trigger --wait`` on a failed run names each task that failed, with its
error and the command that shows its log, so the next step is on the screen;
a backfill says how many of its points had a run already (and were skipped).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ppacer.dag.status import DagRunStatus, TaskStatus

__all__ = ["backfill_outcome", "failed_tasks", "run_outcome"]


def failed_tasks(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The tasks whose latest attempt FAILED, in the run's task order: taskId, retry, error.

    ``run`` is the answer of ``GET /dag/run/details/{runId}`` (every attempt of
    every task); a task failed earlier but then retried with success is not one.
    Tasks that did not run because an upstream task failed are not named:
    they follow from the ones that are.
    """
    latest: dict[str, Mapping[str, Any]] = {}
    for attempt in run.get("tasks", []):
        task_id = attempt["taskId"]
        if task_id not in latest or attempt["retry"] >= latest[task_id]["retry"]:
            latest[task_id] = attempt
    return [
        {"taskId": task_id, "retry": a["retry"], "error": a.get("error")}
        for task_id, a in latest.items()
        if a["status"] == str(TaskStatus.FAILED)
    ]


def run_outcome(run: Mapping[str, Any]) -> list[str]:
    """Lines saying how a run ended: ``run 7 SUCCESS``, or what failed and where to look.

    ::

        run 7 FAILED: task count failed (retry 0): RuntimeError: asked to fail
          its log: ppacer logs 7 count
    """
    run_id, status = run["runId"], run["status"]
    if status != str(DagRunStatus.FAILED):
        return [f"run {run_id} {status}"]
    failed = failed_tasks(run)
    if not failed:
        return [f"run {run_id} FAILED (no task failed: a deadline or an operator ended it)"]
    lines = []
    for task in failed:
        error = " ".join(str(task["error"] or "no error recorded").split())
        where = f"task {task['taskId']} failed (retry {task['retry']})"
        lines.append(f"run {run_id} FAILED: {where}: {error}")
        lines.append(f"  its log: ppacer logs {run_id} {task['taskId']}")
    return lines


def backfill_outcome(created: Mapping[str, Any], final: Mapping[str, Any]) -> str:
    """``backfill 3 of hello: SUCCESS (4 runs created, 2 already existed)``.

    ``existingRuns`` (points of the range that had a run when the backfill
    was created: they are skipped) comes with the scheduler's answer to the
    backfill request; a scheduler that does not send it leaves the count out.
    """
    created_n = len(final.get("runIds") or [])
    parts = [f"{created_n} run{'' if created_n == 1 else 's'} created"]
    existing = created.get("existingRuns", final.get("existingRuns"))
    if existing is not None:
        parts.append(f"{existing} already existed")
    return (
        f"backfill {final['backfillId']} of {final['dagId']}: {final['status']} "
        f"({', '.join(parts)})"
    )
