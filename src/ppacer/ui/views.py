"""What the overview, DAGs and runs pages show: the read layer, shaped for the templates.

Functions here take data only from the scheduler's public methods and its
read layer (:mod:`ppacer.scheduler.reads`) and return plain data for the
templates; each does a bounded number of indexed queries. The other pages:
:mod:`ppacer.ui.view_run` (a run), :mod:`ppacer.ui.view_logs` (an attempt's
log), :mod:`ppacer.ui.view_dag` (a DAG), :mod:`ppacer.ui.view_search` (search).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup

from ppacer.dag.describe import describe_schedule
from ppacer.dag.status import DagRunStatus, TaskStatus
from ppacer.db import dagruns as runs_db
from ppacer.scheduler.core import SchedulerCore
from ppacer.scheduler.reads import seconds_between
from ppacer.timeutils import parse_ts
from ppacer.ui.display import BarSegment, progress_bar

__all__ = [
    "BAR_ORDER",
    "RUN_FILTERS",
    "DagView",
    "dags_view",
    "overview",
    "run_progress",
    "runs_view",
]

#: Run statuses offered by the runs filter, with their labels.
RUN_FILTERS = {
    "running": (DagRunStatus.RUNNING,),
    "queued": (DagRunStatus.READY_TO_SCHEDULE, DagRunStatus.SCHEDULED),
    "success": (DagRunStatus.SUCCESS,),
    "failed": (DagRunStatus.FAILED,),
}
#: Order of the segments in a run's completion bar.
BAR_ORDER = (
    TaskStatus.SUCCESS,
    TaskStatus.SKIPPED,
    TaskStatus.FAILED,
    TaskStatus.UPSTREAM_FAILED,
    TaskStatus.RUNNING,
    TaskStatus.FAILED_PENDING_RETRY,
    TaskStatus.SCHEDULED,
)
#: Task statuses that count as finished in a run's "done/total" (as stored strings).
_TERMINAL_TASK_STATUSES = frozenset(str(s) for s in TaskStatus if s.is_terminal)


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


# ---------------------------------------------------------------------- runs


def run_progress(by_status: dict[str, int], task_count: int) -> tuple[Markup, int]:
    """A run's completion bar and how many of its ``task_count`` tasks are finished."""
    segments: list[BarSegment] = []
    x = 0.0
    for st in BAR_ORDER:
        n = by_status.get(st, 0)
        if n and task_count:
            w = n / task_count * 100
            segments.append((str(st), round(x, 3), round(w, 3), n))
            x += w
    done = sum(n for s, n in by_status.items() if s in _TERMINAL_TASK_STATUSES)
    return progress_bar(tuple(segments), done, task_count), done


def runs_view(
    scheduler: SchedulerCore, dag_id: str | None, status: str | None, page: int, size: int
) -> dict[str, Any]:
    """A page of runs, newest first, each with its tasks' progress by status."""
    statuses = RUN_FILTERS.get(status or "", ())
    rows, total = scheduler.reads.runs_page(
        dag_id=dag_id, statuses=statuses, limit=size, offset=(page - 1) * size
    )
    counts = scheduler.reads.task_counts([r.run_id for r in rows])
    now = scheduler.clock.now()
    registry = scheduler.registry
    # Most runs of a page share their tasks' counts (all succeeded, say): one bar each.
    progress: dict[tuple[int, tuple[tuple[str, int], ...]], tuple[Markup, int]] = {}
    items = []
    for run in rows:
        dag = registry.get(run.dag_id)
        by_status = counts.get(run.run_id, {})
        task_count = len(dag.tasks) if dag is not None else sum(by_status.values())
        key = (task_count, tuple(by_status.items()))
        bar_done = progress.get(key)
        if bar_done is None:
            bar_done = progress[key] = run_progress(by_status, task_count)
        if run.status.is_finished:
            duration_s = seconds_between(run.insert_ts, run.status_update_ts)
        else:
            duration_s = (now - parse_ts(run.insert_ts)).total_seconds()
        items.append(
            {
                "run": run,
                "task_count": task_count,
                "done": bar_done[1],
                "bar": bar_done[0],
                "duration_s": duration_s,
            }
        )
    pages = max(1, -(-total // size))
    return {"items": items, "total": total, "page": page, "pages": pages, "size": size}
