"""What each UI page shows, read from the scheduler's memory and its databases.

Functions here return plain data for the templates; they run on the
scheduler's event loop (they read the task scheduler's in-memory state) and
each does a bounded number of indexed queries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from ppacer.dag.status import DagRunStatus, TaskStatus
from ppacer.db import controls as controls_db
from ppacer.db import dagruns as runs_db
from ppacer.db import dagruntasks as tasks_db
from ppacer.db import ui_queries
from ppacer.db.dags import read_task_source
from ppacer.db.tasklogs import TaskLogLine, read_task_log_lines
from ppacer.errors import NotFoundError
from ppacer.timeutils import parse_ts
from ppacer.ui.display import BarSegment, describe_schedule, progress_bar
from ppacer.ui.graph import Attempt, GanttRow, Graph, TaskShape, gantt_rows, layout_graph

if TYPE_CHECKING:
    from ppacer.scheduler.server import Scheduler

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
    "task_retries",
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


def _attempt_over(status: TaskStatus) -> bool:
    """Whether an attempt has ended (a failed one waiting for a retry has: retries are new rows)."""
    return status.is_terminal or status is TaskStatus.FAILED_PENDING_RETRY


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (parse_ts(end) - parse_ts(start)).total_seconds()


# ---------------------------------------------------------------------- overview


def overview(scheduler: Scheduler) -> dict[str, Any]:
    """Runs by status, running tasks, queues, executors, scheduler state, last failures."""
    ts = scheduler.task_scheduler
    with scheduler.engine.connect() as conn:
        by_status = runs_db.count_dag_runs_by_status(conn)
        running, running_total = ui_queries.read_running_attempts(conn, 25)
        failed_runs, _ = ui_queries.read_runs_page(conn, statuses=[DagRunStatus.FAILED], limit=8)
        failures = ui_queries.read_failed_attempts(conn, failed_runs)
    errors_by_run: dict[int, list[ui_queries.FailedAttempt]] = {}
    for f in failures:
        errors_by_run.setdefault(f.run_id, []).append(f)
    now = scheduler.clock.now()
    executors = []
    executors_view = getattr(ts, "executors_view", None)
    for info in executors_view() if callable(executors_view) else []:
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
    stats = ts.stats() if ts is not None else {}
    watcher = scheduler.watcher
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
                watcher.queue.qsize() if watcher else 0,
                watcher.queue.maxsize if watcher else 0,
                "new runs waiting for the task scheduler",
            ),
            ("ready tasks", stats.get("ready", 0), None, "tasks waiting for an executor"),
            ("active runs", stats.get("active_runs", 0), None, "runs being scheduled now"),
            (
                "runs over their limit",
                stats.get("queued_runs", 0),
                None,
                "runs waiting for max_active_runs",
            ),
            ("executor polls", stats.get("waiters", 0), None, "executors waiting for work"),
        ],
        "executors": executors,
        "failed_runs": [(run, errors_by_run.get(run.run_id, [])) for run in failed_runs],
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


def dags_view(scheduler: Scheduler, recent: int = 12) -> list[DagView]:
    """Every DAG of the registry with its schedule, next run, pause and latest runs."""
    dag_ids = sorted(scheduler.registry)
    with scheduler.engine.connect() as conn:
        paused = controls_db.read_paused_dags(conn)
        runs = ui_queries.read_recent_runs_by_dag(conn, dag_ids, recent)
    watcher = scheduler.watcher
    out = []
    for dag_id in dag_ids:
        dag = scheduler.registry[dag_id]
        is_paused = dag_id in paused
        next_run = None
        if watcher is not None and not is_paused and dag.schedule is not None:
            next_run = watcher.pending_point(dag_id)
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
    scheduler: Scheduler, dag_id: str | None, status: str | None, page: int, size: int
) -> dict[str, Any]:
    """A page of runs, newest first, each with its tasks' progress by status."""
    statuses = RUN_FILTERS.get(status or "", ())
    with scheduler.engine.connect() as conn:
        rows, total = ui_queries.read_runs_page(
            conn, dag_id=dag_id, statuses=statuses, limit=size, offset=(page - 1) * size
        )
        counts = tasks_db.count_tasks_by_run(conn, [r.run_id for r in rows])
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
            duration_s = _seconds(run.insert_ts, run.status_update_ts)
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


def read_run(scheduler: Scheduler, run_id: int) -> runs_db.DagRunRow:
    """The run, or :class:`NotFoundError`."""
    with scheduler.engine.connect() as conn:
        run = runs_db.read_dag_run(conn, run_id)
    if run is None:
        raise NotFoundError(f"no DAG run {run_id}")
    return run


def run_view(scheduler: Scheduler, run_id: int) -> RunView:
    """A run: its graph, Gantt chart, tasks, parameters and history."""
    with scheduler.engine.connect() as conn:
        run = runs_db.read_dag_run(conn, run_id)
        if run is None:
            raise NotFoundError(f"no DAG run {run_id}")
        attempts = tasks_db.read_dag_run_tasks(conn, run.dag_id, run.exec_ts)
        errors = tasks_db.read_task_errors(conn, run.dag_id, run.exec_ts)
        params = runs_db.read_dag_run_params(conn, run.run_id)
        events = controls_db.read_run_events(conn, run.run_id)
        restarts = runs_db.count_restarts(conn, run.dag_id, run.exec_ts)
    ts = scheduler.task_scheduler
    is_active = ts is not None and (run.dag_id, run.exec_ts) in ts.active
    latest: dict[str, tasks_db.DagRunTaskRow] = {}
    count: dict[str, int] = {}
    for a in attempts:
        count[a.task_id] = count.get(a.task_id, 0) + 1
        if a.task_id not in latest or a.retry > latest[a.task_id].retry:
            latest[a.task_id] = a
    dag = scheduler.registry.get(run.dag_id)
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
                _seconds(last.insert_ts, last.status_update_ts)
                if last is not None and _attempt_over(last.status)
                else None,
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
                _attempt_over(a.status),
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
        params=params,
        tasks=tasks,
        graph=layout_graph(shapes, statuses),
        gantt=chart,
        gantt_start=start,
        gantt_end=end,
        events=events,
        restarts=restarts,
        duration_s=_seconds(run.insert_ts, run.status_update_ts)
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


def task_panel(scheduler: Scheduler, run_id: int, task_id: str) -> TaskPanel:
    """A task of a run with every attempt and its source at the version the run used."""
    with scheduler.engine.connect() as conn:
        run = runs_db.read_dag_run(conn, run_id)
        if run is None:
            raise NotFoundError(f"no DAG run {run_id}")
        attempts = [
            a
            for a in tasks_db.read_dag_run_tasks(conn, run.dag_id, run.exec_ts)
            if a.task_id == task_id
        ]
        errors = tasks_db.read_task_errors(conn, run.dag_id, run.exec_ts)
        outputs = tasks_db.read_task_outputs(conn, run.dag_id, run.exec_ts)
        src = read_task_source(conn, run.dag_id, task_id, run.insert_ts)
    dag = scheduler.registry.get(run.dag_id)
    in_dag = dag is not None and task_id in dag.tasks
    if not attempts and not in_dag and src is None:
        raise NotFoundError(f"DAG run {run_id} has no task {task_id!r}")
    ts = scheduler.task_scheduler
    rows = [
        {
            "retry": a.retry,
            "status": str(a.status),
            "insert_ts": a.insert_ts,
            "status_update_ts": a.status_update_ts,
            "duration_s": _seconds(a.insert_ts, a.status_update_ts)
            if _attempt_over(a.status)
            else None,
            "error": errors.get((task_id, a.retry)),
            "output": outputs.get((task_id, a.retry)),
        }
        for a in sorted(attempts, key=lambda a: a.retry)
    ]
    config: dict[str, Any] = {}
    if src is not None:
        try:
            config = json.loads(src.config)
        except ValueError:
            config = {"raw": src.config}
    return TaskPanel(
        run=run,
        task_id=task_id,
        attempts=rows,
        source=src.body_source if src is not None else "",
        type_name=src.type_name if src is not None else "",
        config=config,
        code_version=src.insert_ts if src is not None else "",
        in_dag=in_dag,
        is_active=ts is not None and (run.dag_id, run.exec_ts) in ts.active,
    )


# ---------------------------------------------------------------------- logs


def task_retries(scheduler: Scheduler, run: runs_db.DagRunRow, task_id: str) -> list[int]:
    """The retry numbers of a task's attempts in a run, in order."""
    with scheduler.engine.connect() as conn:
        rows = tasks_db.read_dag_run_tasks(conn, run.dag_id, run.exec_ts)
    return sorted({a.retry for a in rows if a.task_id == task_id})


def logs_view(
    scheduler: Scheduler, run: runs_db.DagRunRow, task_id: str, retry: int, offset: int
) -> dict[str, Any]:
    """Log lines of one attempt from ``offset`` on, and whether more may still come."""
    with scheduler.engine.connect() as conn:
        attempt = next(
            (
                a
                for a in tasks_db.read_dag_run_tasks(conn, run.dag_id, run.exec_ts)
                if a.task_id == task_id and a.retry == retry
            ),
            None,
        )
    lines: list[TaskLogLine] = []
    if scheduler.logs_engine is not None:
        with scheduler.logs_engine.connect() as conn:
            lines = read_task_log_lines(
                conn, run.dag_id, run.exec_ts, task_id, retry, offset=offset, limit=MAX_LOG_LINES
            )
    status = str(attempt.status) if attempt is not None else str(TaskStatus.NO_STATUS)
    live = attempt is not None and not _attempt_over(attempt.status)
    return {
        "lines": lines,
        "offset": offset,
        "next_offset": offset + len(lines),
        "status": status,
        "live": live,
        "has_logs_db": scheduler.logs_engine is not None,
        "truncated": len(lines) >= MAX_LOG_LINES,
    }
