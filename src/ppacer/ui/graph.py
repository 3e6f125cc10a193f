"""Geometry of the run page's task graph, computed on the server.

The graph is layered: a task's column is its depth (the DAG's ``depth``: its
longest path from the root), its row its ``width`` within that depth, and each
column is centred vertically. Edges are cubic curves from a parent's right
side to a child's left side. Templates only draw what is computed here. The
Gantt chart drawn beside it is :mod:`ppacer.ui.gantt` (its names are
importable from here too).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ppacer.ui.gantt import Attempt, GanttBar, GanttRow, gantt_rows

__all__ = [
    "NODE_H",
    "NODE_W",
    "Attempt",
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
