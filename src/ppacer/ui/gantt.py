"""The run page's Gantt chart, computed on the server: one bar per attempt on one time axis.

Each task has a row and each of its attempts a bar, retries side by side. A
bar spans from when the attempt was scheduled to when it ended (to now while it
has not); its ``queued`` part is the time it waited for an executor. Positions
are in per-mille of the chart's width, so templates only draw what is computed
here. The task graph drawn beside it is :mod:`ppacer.ui.graph`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Attempt", "GanttBar", "GanttRow", "gantt_rows"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One task attempt as the Gantt chart sees it."""

    task_id: str
    retry: int
    status: str
    start: datetime
    # When its status last changed; for an attempt still RUNNING, when it started running.
    changed: datetime
    is_finished: bool


@dataclass(frozen=True, slots=True)
class GanttBar:
    """A bar in per-mille of the chart's width (0..1000); ``queued`` is the waiting part."""

    retry: int
    status: str
    x: float
    width: float
    queued_width: float
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class GanttRow:
    """One task's line: a bar per attempt (retries side by side)."""

    task_id: str
    bars: list[GanttBar]


def gantt_rows(
    attempts: Iterable[Attempt], order: list[str], now: datetime
) -> tuple[list[GanttRow], datetime | None, datetime | None]:
    """Bars of each task's attempts on one time axis; the axis' start and end.

    A finished attempt spans from when it was scheduled to its last status
    change. A RUNNING attempt is drawn as queued (scheduled to started) and
    then running (started to now).
    """
    items = list(attempts)
    if not items:
        return [], None, None
    spans: list[tuple[Attempt, datetime, datetime, datetime]] = []
    for a in items:
        if a.is_finished:
            spans.append((a, a.start, a.start, max(a.changed, a.start)))
        elif a.status == "RUNNING":
            spans.append((a, a.start, max(a.changed, a.start), max(now, a.changed)))
        else:
            spans.append((a, a.start, max(now, a.start), max(now, a.start)))
    t0 = min(s[1] for s in spans)
    t1 = max(s[3] for s in spans)
    total = max((t1 - t0).total_seconds(), 1e-3)

    def scale(t: datetime) -> float:
        return round((t - t0).total_seconds() / total * 1000, 2)

    by_task: dict[str, list[GanttBar]] = {}
    for a, start, running_from, end in spans:
        x = scale(start)
        width = max(scale(end) - x, 2.0)
        by_task.setdefault(a.task_id, []).append(
            GanttBar(
                a.retry,
                a.status,
                x,
                width,
                min(scale(running_from) - x, width),
                start,
                end,
            )
        )
    rows = [
        GanttRow(tid, sorted(by_task[tid], key=lambda b: b.retry))
        for tid in order
        if tid in by_task
    ]
    known = set(order)
    rows += [GanttRow(tid, bars) for tid, bars in by_task.items() if tid not in known]
    return rows, t0, t1
