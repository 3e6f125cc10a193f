"""What the run page shows: graph, timeline, tasks (sorted, filtered), timing, neighbours.

Built from the read layer in a worker thread; what lives in the scheduler's
memory (why queued attempts wait) is read on the event loop by the handler and
passed in. A run's wall time is split by :func:`ppacer.ui.timing.run_timing`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ppacer.dag.status import TaskStatus
from ppacer.db import controls as controls_db
from ppacer.db import dagruns as runs_db
from ppacer.scheduler.core import SchedulerCore
from ppacer.scheduler.reads import AttemptView, seconds_between
from ppacer.timeutils import parse_ts
from ppacer.ui.gantt import Attempt, GanttRow, gantt_rows
from ppacer.ui.graph import Graph, TaskShape, layout_graph
from ppacer.ui.timing import RunTiming, run_timing

__all__ = [
    "TASK_SORTS",
    "RunView",
    "TaskPanel",
    "TaskRow",
    "TaskTableQuery",
    "run_view",
    "task_panel",
]


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
    # Queue wait of the latest attempt, when it started, on which executor, with which code.
    queued_s: float | None = None
    start_ts: str | None = None
    executor: str | None = None
    code_version: str | None = None
    # Why no executor takes it (a queued attempt), from the scheduler's memory.
    waiting: str | None = None
    # Its place in graph order (the table's default order).
    order: int = 0


def _none_last(value: Any) -> tuple[bool, Any]:
    return (value is None, value)


#: The task table's orders, by the name in ``?sort=`` (``-name``: descending).
TASK_SORTS = {
    "graph": lambda t: t.order,
    "task": lambda t: t.task_id,
    "status": lambda t: (t.status, t.order),
    "attempts": lambda t: (t.attempts, t.order),
    "duration": lambda t: _none_last(t.duration_s),
    "queued": lambda t: _none_last(t.queued_s),
    "started": lambda t: _none_last(t.start_ts),
    "executor": lambda t: _none_last(t.executor),
}


@dataclass(frozen=True, slots=True)
class TaskTableQuery:
    """How the task table is narrowed and ordered (``?status=&name=&sort=``)."""

    status: str = ""
    name: str = ""
    sort: str = "graph"

    @property
    def key(self) -> str:
        """The sort's column name."""
        return self.sort.removeprefix("-")

    @property
    def descending(self) -> bool:
        """Whether the order is reversed."""
        return self.sort.startswith("-")

    def apply(self, tasks: Iterable[TaskRow]) -> list[TaskRow]:
        """The rows that pass the filters, in the asked order."""
        name = self.name.strip().lower()
        rows = [
            t
            for t in tasks
            if (not self.status or t.status == self.status)
            and (not name or name in t.task_id.lower())
        ]
        key = TASK_SORTS.get(self.key, TASK_SORTS["graph"])
        return sorted(rows, key=key, reverse=self.descending)

    def params(self, **changes: str) -> dict[str, str]:
        """The query parameters of this view with ``changes`` (empty values left out)."""
        values = {"status": self.status, "name": self.name, "sort": self.sort, **changes}
        return {k: v for k, v in values.items() if v and not (k == "sort" and v == "graph")}


@dataclass(slots=True)
class RunView:
    """Everything the run page shows."""

    run: runs_db.DagRunRow
    is_active: bool
    params: dict[str, Any]
    # Every task in graph order, and those the table shows (filtered, sorted).
    tasks: list[TaskRow]
    shown: list[TaskRow]
    graph: Graph
    gantt: list[GanttRow]
    gantt_start: datetime | None
    gantt_end: datetime | None
    events: list[controls_db.RunEventRow]
    restarts: int
    duration_s: float | None
    timing: RunTiming
    prev_run: runs_db.DagRunRow | None = None
    next_run: runs_db.DagRunRow | None = None
    counts: dict[str, int] = field(default_factory=dict)


def run_view(
    scheduler: SchedulerCore,
    run_id: int,
    waiting: Mapping[tuple[str, int], str] | None = None,
    table: TaskTableQuery | None = None,
) -> RunView:
    """A run: graph, Gantt chart, tasks, timing, neighbours, parameters and history.

    ``waiting``: why queued attempts wait, by ``(task_id, retry)`` (see
    :meth:`SchedulerCore.waiting_reasons`, read on the event loop).
    """
    reads = scheduler.reads
    view = reads.run_view(run_id)
    events = reads.run_events(run_id)
    prev_run, next_run = reads.adjacent_runs(view.run)
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
    for order, shape in enumerate(sorted(shapes, key=lambda s: (s.depth, s.width))):
        last = latest.get(shape.task_id)
        tasks.append(_task_row(shape, last, errors, count, waiting or {}, order))
    statuses = {t.task_id: t.status for t in tasks}
    now = scheduler.clock.now()
    # A finished run's leftover unfinished attempts end with the run, not now.
    finished = run.status.is_finished and not is_active
    chart_end = parse_ts(run.status_update_ts) if finished else now
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
    run_start = parse_ts(run.insert_ts)
    return RunView(
        run=run,
        is_active=is_active,
        params=view.params,
        tasks=tasks,
        shown=(table or TaskTableQuery()).apply(tasks),
        graph=layout_graph(shapes, statuses),
        gantt=chart,
        gantt_start=start,
        gantt_end=end,
        events=events,
        restarts=view.restarts,
        duration_s=seconds_between(run.insert_ts, run.status_update_ts)
        if run.status.is_finished
        else (now - run_start).total_seconds(),
        timing=run_timing(attempts, run_start, chart_end, now),
        prev_run=prev_run,
        next_run=next_run,
        counts=counts,
    )


def _task_row(
    shape: TaskShape,
    last: AttemptView | None,
    errors: Mapping[tuple[str, int], str],
    count: Mapping[str, int],
    waiting: Mapping[tuple[str, int], str],
    order: int,
) -> TaskRow:
    row = TaskRow(
        shape.task_id,
        str(TaskStatus.NO_STATUS),
        0,
        0,
        None,
        None,
        shape.depth,
        shape.width,
        order=order,
    )
    if last is None:
        return row
    error = errors.get((last.task_id, last.retry))
    if error is None and last.retry > 0 and last.status is not TaskStatus.SUCCESS:
        # A retry is waiting or running: the previous attempt's error explains why.
        error = errors.get((last.task_id, last.retry - 1))
    return replace(
        row,
        status=str(last.status),
        retry=last.retry,
        attempts=count.get(shape.task_id, 0),
        duration_s=last.duration_s,
        error=error,
        queued_s=last.queued_s,
        start_ts=last.start_ts,
        executor=last.executor,
        code_version=last.code_version,
        waiting=waiting.get((last.task_id, last.retry)),
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


def task_panel(
    scheduler: SchedulerCore,
    run_id: int,
    task_id: str,
    waiting: Mapping[tuple[str, int], str] | None = None,
) -> TaskPanel:
    """A task of a run with every attempt (where and how long it waited and ran) and its
    source at the version the run used."""
    view = scheduler.reads.task_view(run_id, task_id)
    src = view.source
    rows = [
        {
            "retry": a.retry,
            "status": str(a.status),
            "insert_ts": a.insert_ts,
            "status_update_ts": a.status_update_ts,
            "start_ts": a.start_ts,
            "queued_s": a.queued_s,
            "duration_s": a.duration_s,
            "executor": a.executor,
            "code_version": a.code_version,
            "waiting": (waiting or {}).get((a.task_id, a.retry)),
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
