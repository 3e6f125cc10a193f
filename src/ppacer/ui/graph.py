"""Geometry of the run page's pictures, computed on the server: the task graph and the Gantt chart.

The graph is layered: a task's column is its depth (the DAG's ``depth``: its
longest path from the root), its row its ``width`` within that depth, and each
column is centred vertically. Edges are cubic curves from a parent's right
side to a child's left side. Templates only draw what is computed here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "NODE_H",
    "NODE_W",
    "Edge",
    "GanttBar",
    "GanttRow",
    "Graph",
    "GraphNode",
    "gantt_rows",
    "layout_graph",
]

NODE_W = 168
NODE_H = 34
COL_GAP = 56
ROW_GAP = 12
PAD = 8
# Columns are centred against each other within this many rows.
CENTRE_ROWS = 12
# Task ids longer than this are cut in the node (the full id is in its tooltip).
LABEL_CHARS = 21


@dataclass(frozen=True, slots=True)
class GraphNode:
    """A task's box: top-left corner, its status and the text shown."""

    task_id: str
    x: int
    y: int
    status: str
    label: str


@dataclass(frozen=True, slots=True)
class Edge:
    """An arrow from a parent to a child, as an SVG path."""

    parent: str
    child: str
    path: str


@dataclass(frozen=True, slots=True)
class Graph:
    """A laid-out task graph and the SVG canvas size it needs."""

    nodes: list[GraphNode]
    edges: list[Edge]
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class TaskShape:
    """What the layout needs of a task: its position and children."""

    task_id: str
    depth: int
    width: int
    children: tuple[str, ...]


def _label(task_id: str) -> str:
    return task_id if len(task_id) <= LABEL_CHARS else task_id[: LABEL_CHARS - 1] + "…"


def layout_graph(tasks: Iterable[TaskShape], statuses: Mapping[str, str]) -> Graph:
    """Place each task by (depth, width) and route the edges between them."""
    shapes = sorted(tasks, key=lambda t: (t.depth, t.width, t.task_id))
    if not shapes:
        return Graph([], [], 0, 0)
    columns: dict[int, list[TaskShape]] = {}
    for shape in shapes:
        columns.setdefault(shape.depth, []).append(shape)
    depths = sorted(columns)
    tallest = max(len(col) for col in columns.values())
    # Shorter columns are centred against the tallest, but within the first rows
    # only, so the root of a wide fan-out stays in view at the top.
    centre_rows = min(tallest, CENTRE_ROWS)
    pos: dict[str, tuple[int, int]] = {}
    for index, depth in enumerate(depths):
        col = columns[depth]
        offset = max(0, (centre_rows - len(col)) * (NODE_H + ROW_GAP) // 2)
        for row, shape in enumerate(col):
            pos[shape.task_id] = (
                PAD + index * (NODE_W + COL_GAP),
                PAD + offset + row * (NODE_H + ROW_GAP),
            )
    nodes = [
        GraphNode(
            s.task_id,
            *pos[s.task_id],
            statuses.get(s.task_id, "NO_STATUS"),
            _label(s.task_id),
        )
        for s in shapes
    ]
    edges = []
    for shape in shapes:
        px, py = pos[shape.task_id]
        x1, y1 = px + NODE_W, py + NODE_H // 2
        for child in shape.children:
            if child not in pos:
                continue
            cx, cy = pos[child]
            x2, y2 = cx, cy + NODE_H // 2
            bend = max(COL_GAP // 2, (x2 - x1) // 2)
            edges.append(
                Edge(
                    shape.task_id,
                    child,
                    f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2 - 6},{y2}",
                )
            )
    width = 2 * PAD + len(depths) * NODE_W + (len(depths) - 1) * COL_GAP
    height = 2 * PAD + tallest * NODE_H + (tallest - 1) * ROW_GAP
    return Graph(nodes, edges, width, height)


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
