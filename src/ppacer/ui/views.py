"""What each UI page shows: the scheduler's read layer, shaped for the templates.

Functions here take data only from the scheduler's public methods and its
read layer (:mod:`ppacer.scheduler.reads`) and return plain data for the
templates; each does a bounded number of indexed queries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from markupsafe import Markup

from ppacer.dag.status import DagRunStatus, TaskStatus
from ppacer.db import controls as controls_db
from ppacer.db import dagruns as runs_db
from ppacer.scheduler.core import SchedulerCore
from ppacer.scheduler.reads import seconds_between
from ppacer.timeutils import parse_ts
from ppacer.ui.display import BarSegment, describe_schedule, progress_bar
from ppacer.ui.graph import Attempt, GanttRow, Graph, TaskShape, gantt_rows, layout_graph

__all__ = [
    "DagView",
    "RunView",
    "TaskPanel",
    "dags_view",
    "logs_view",
    "overview",
    "read_run",
    "run_view",
    "runs_view",
    "task_panel",
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
MAX_LOG_LINES = 5000
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


def _progress(by_status: dict[str, int], task_count: int) -> tuple[Markup, int]:
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
            bar_done = progress[key] = _progress(by_status, task_count)
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


# ---------------------------------------------------------------------- one run


@dataclass(slots=True)
class TaskRow:
    """A task of a run as the run page lists it (its latest attempt)."""

    task_id: str
    status: str
    retry: int
    attempts: int
    duration_s: float | None
    error: str | None
    depth: int
    width: int


@dataclass(slots=True)
class RunView:
    """Everything the run page shows."""

    run: runs_db.DagRunRow
    is_active: bool
    params: dict[str, Any]
    tasks: list[TaskRow]
    graph: Graph
    gantt: list[GanttRow]
    gantt_start: datetime | None
    gantt_end: datetime | None
    events: list[controls_db.RunEventRow]
    restarts: int
    duration_s: float | None
    counts: dict[str, int] = field(default_factory=dict)


def read_run(scheduler: SchedulerCore, run_id: int) -> runs_db.DagRunRow:
    """The run, or :class:`~ppacer.errors.NotFoundError`."""
    return scheduler.reads.run(run_id)


def run_view(scheduler: SchedulerCore, run_id: int) -> RunView:
    """A run: its graph, Gantt chart, tasks, parameters and history."""
    view = scheduler.reads.run_view(run_id)
    events = scheduler.reads.run_events(run_id)
    run, attempts, is_active = view.run, view.attempts, view.is_active
    latest = view.latest()
    errors = {(a.task_id, a.retry): a.error for a in attempts if a.error is not None}
    count: dict[str, int] = {}
    for a in attempts:
        count[a.task_id] = count.get(a.task_id, 0) + 1
    dag = view.dag
    shapes: list[TaskShape] = []
    if dag is not None:
        shapes = [
            TaskShape(info.task_id, info.depth, info.width, info.children)
            for info in dag.tasks.values()
        ]
    known = {s.task_id for s in shapes}
    # Tasks that ran but are no longer in the DAG: a column of their own, at the end.
    extra_depth = max((s.depth for s in shapes), default=0) + 1
    for i, tid in enumerate(t for t in latest if t not in known):
        shapes.append(TaskShape(tid, extra_depth, i + 1, ()))
    tasks = []
    for shape in sorted(shapes, key=lambda s: (s.depth, s.width)):
        last = latest.get(shape.task_id)
        error = None
        if last is not None:
            error = errors.get((last.task_id, last.retry))
            if error is None and last.retry > 0 and last.status is not TaskStatus.SUCCESS:
                # A retry is waiting or running: the previous attempt's error explains why.
                error = errors.get((last.task_id, last.retry - 1))
        tasks.append(
            TaskRow(
                shape.task_id,
                str(last.status) if last is not None else str(TaskStatus.NO_STATUS),
                last.retry if last is not None else 0,
                count.get(shape.task_id, 0),
                last.duration_s if last is not None else None,
                error,
                shape.depth,
                shape.width,
            )
        )
    statuses = {t.task_id: t.status for t in tasks}
    now = scheduler.clock.now()
    # A finished run's leftover unfinished attempts end with the run, not now.
    chart_end = parse_ts(run.status_update_ts) if run.status.is_finished and not is_active else now
    chart, start, end = gantt_rows(
        (
            Attempt(
                a.task_id,
                a.retry,
                str(a.status),
                parse_ts(a.insert_ts),
                parse_ts(a.status_update_ts),
                a.is_over,
            )
            for a in attempts
        ),
        [t.task_id for t in tasks],
        chart_end,
    )
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t.status] = counts.get(t.status, 0) + 1
    return RunView(
        run=run,
        is_active=is_active,
        params=view.params,
        tasks=tasks,
        graph=layout_graph(shapes, statuses),
        gantt=chart,
        gantt_start=start,
        gantt_end=end,
        events=events,
        restarts=view.restarts,
        duration_s=seconds_between(run.insert_ts, run.status_update_ts)
        if run.status.is_finished
        else (now - parse_ts(run.insert_ts)).total_seconds(),
        counts=counts,
    )


@dataclass(slots=True)
class TaskPanel:
    """One task of a run: its attempts, errors, outputs and the source that ran."""

    run: runs_db.DagRunRow
    task_id: str
    attempts: list[dict[str, Any]]
    source: str
    type_name: str
    config: dict[str, Any]
    code_version: str
    in_dag: bool
    is_active: bool


def task_panel(scheduler: SchedulerCore, run_id: int, task_id: str) -> TaskPanel:
    """A task of a run with every attempt and its source at the version the run used."""
    view = scheduler.reads.task_view(run_id, task_id)
    src = view.source
    rows = [
        {
            "retry": a.retry,
            "status": str(a.status),
            "insert_ts": a.insert_ts,
            "status_update_ts": a.status_update_ts,
            "duration_s": a.duration_s,
            "error": a.error,
            "output": view.outputs.get(a.retry),
        }
        for a in view.attempts
    ]
    config: dict[str, Any] = {}
    if src is not None:
        try:
            config = json.loads(src.config)
        except ValueError:
            config = {"raw": src.config}
    return TaskPanel(
        run=view.run,
        task_id=task_id,
        attempts=rows,
        source=src.body_source if src is not None else "",
        type_name=src.type_name if src is not None else "",
        config=config,
        code_version=src.insert_ts if src is not None else "",
        in_dag=view.in_dag,
        is_active=view.is_active,
    )


# ---------------------------------------------------------------------- logs


def logs_view(
    scheduler: SchedulerCore, run_id: int, task_id: str, retry: int | None, offset: int
) -> dict[str, Any]:
    """Log lines of one attempt (the latest unless ``retry``) from ``offset`` on."""
    page = scheduler.reads.log_page(run_id, task_id, retry, offset=offset, limit=MAX_LOG_LINES)
    return {
        "run": page.run,
        "retry": page.retry,
        "retries": list(page.retries),
        "lines": page.lines,
        "offset": page.offset,
        "next_offset": page.next_offset,
        "status": str(page.status),
        "live": page.status is not TaskStatus.NO_STATUS and not page.finished,
        "has_logs_db": page.has_logs_db,
        "truncated": len(page.lines) >= MAX_LOG_LINES,
    }
