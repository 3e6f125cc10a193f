"""What the overview and DAGs pages show: the read layer, shaped for the templates.

Functions here take data only from the scheduler's public methods and its
read layer (:mod:`ppacer.scheduler.reads`) and return plain data for the
templates; each does a bounded number of indexed queries. The other pages:
:mod:`ppacer.ui.view_runs` (the runs; its names are importable from here
too), :mod:`ppacer.ui.view_run` (a run), :mod:`ppacer.ui.view_logs` (an
attempt's log), :mod:`ppacer.ui.view_dag` (a DAG), :mod:`ppacer.ui.view_search`
(search).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ppacer.dag.describe import describe_schedule
from ppacer.dag.status import DagRunStatus
from ppacer.db import dagruns as runs_db
from ppacer.scheduler.core import SchedulerCore
from ppacer.ui.view_runs import BAR_ORDER, RUN_FILTERS, run_progress, runs_view

__all__ = [
    "BAR_ORDER",
    "RUN_FILTERS",
    "DagView",
    "dags_view",
    "overview",
    "run_progress",
    "runs_view",
]


# ---------------------------------------------------------------------- overview


def overview(scheduler: SchedulerCore) -> dict[str, Any]:
    """Runs by status, running tasks, queues, executors, scheduler state, last failures."""
    reads = scheduler.reads
    by_status, _ = reads.status_counts()
    running, running_total = reads.running_attempts(25)
    now = scheduler.clock.now()
    executors = []
    for info in scheduler.executors():
        age = (now - info.last_seen).total_seconds()
        executors.append(
            {
                "name": info.name,
                "age_s": age,
                "connected": age <= scheduler.config.lease_timeout_s,
                # Leases it holds now (live), else what its last heartbeat said.
                "running": len(info.leases) if info.leases else info.running,
                "capacity": info.capacity,
            }
        )
    stats = scheduler.stats()
    return {
        "state": str(scheduler.state),
        "version": scheduler.version,
        "dag_count": len(scheduler.registry),
        "runs": {
            "running": by_status.get(DagRunStatus.RUNNING, 0),
            "queued": by_status.get(DagRunStatus.READY_TO_SCHEDULE, 0)
            + by_status.get(DagRunStatus.SCHEDULED, 0),
            "success": by_status.get(DagRunStatus.SUCCESS, 0),
            "failed": by_status.get(DagRunStatus.FAILED, 0),
        },
        "running": running,
        "running_total": running_total,
        "queues": [
            (
                "DAG-run queue",
                stats.dag_run_queue,
                stats.dag_run_queue_max,
                "new runs waiting for the task scheduler",
            ),
            ("ready tasks", stats.ready, None, "tasks waiting for an executor"),
            ("active runs", stats.active_runs, None, "runs being scheduled now"),
            ("runs over their limit", stats.queued_runs, None, "runs waiting for max_active_runs"),
            ("executor polls", stats.waiters, None, "executors waiting for work"),
        ],
        "executors": executors,
        "failed_runs": reads.failed_runs(8),
    }


# ---------------------------------------------------------------------- DAGs


@dataclass(frozen=True, slots=True)
class DagView:
    """A row of the DAGs page."""

    dag_id: str
    description: str
    tags: tuple[str, ...]
    schedule: str
    next_run: datetime | None
    paused: bool
    task_count: int
    recent: list[runs_db.DagRunRow]


def dags_view(scheduler: SchedulerCore, recent: int = 12) -> list[DagView]:
    """Every DAG of the registry with its schedule, next run, pause and latest runs."""
    dag_ids = sorted(scheduler.registry)
    paused = scheduler.reads.paused_dags()
    runs = scheduler.reads.recent_runs(dag_ids, recent)
    out = []
    for dag_id in dag_ids:
        dag = scheduler.registry[dag_id]
        is_paused = dag_id in paused
        next_run = None
        if not is_paused and dag.schedule is not None:
            next_run = scheduler.next_run(dag_id)
        out.append(
            DagView(
                dag_id,
                getattr(dag, "description", "") or "",
                dag.attributes.tags,
                describe_schedule(dag.schedule, scheduler.config.timezone),
                next_run,
                is_paused,
                len(dag.tasks),
                list(reversed(runs[dag_id])),
            )
        )
    return out
