"""What the runs page shows: a page of runs, newest first, each with its completion bar.

The list narrows by DAG and by status (:data:`RUN_FILTERS`, also offered by
search); each run's tasks are counted by status in one query for the page and
drawn as one bar, built once for the runs that share their counts. Built from
the read layer (:mod:`ppacer.scheduler.reads`) in a worker thread.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from ppacer.dag.status import DagRunStatus, TaskStatus
from ppacer.scheduler.core import SchedulerCore
from ppacer.scheduler.reads import seconds_between
from ppacer.timeutils import parse_ts
from ppacer.ui.display import BarSegment, progress_bar

__all__ = ["BAR_ORDER", "RUN_FILTERS", "run_progress", "runs_view"]

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
