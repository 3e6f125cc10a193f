"""The graph of a DAG, checked and laid out: cycles, duplicate ids, parents, positions.

Walked without recursion, so a DAG of any depth validates. A task sits at its
deepest level (the longest path from the root, root = 1) and, within a level,
in breadth-first discovery order.
"""

from __future__ import annotations

from collections.abc import Mapping

from ppacer.dag.node import Node, TaskInfo
from ppacer.dag.task import TaskConfig, task_code_version, task_source
from ppacer.errors import DagValidationError

__all__ = ["compile_graph"]


def compile_graph(
    dag_id: str, root: Node, default_config: TaskConfig, dag_version: str | None
) -> dict[str, TaskInfo]:
    """Check the graph under ``root`` and return its tasks in graph order (depth, width).

    A cycle, a duplicate or empty task id is a :class:`DagValidationError` naming
    the DAG and the task.
    """
    nodes: dict[str, Node] = {}
    order: list[str] = []
    # Iterative DFS with colours: finds cycles and duplicate ids without recursion limits.
    state: dict[int, int] = {}  # id(node) -> 1 visiting, 2 done
    stack: list[tuple[Node, int]] = [(root, 0)]
    path: list[str] = []
    while stack:
        node, child_idx = stack.pop()
        if child_idx == 0:
            tid = node.task.id()
            if not isinstance(tid, str) or not tid.strip():
                raise DagValidationError(dag_id, "task id must be a non-empty string", repr(tid))
            known = nodes.get(tid)
            if known is not None and known is not node:
                raise DagValidationError(
                    dag_id,
                    "duplicate task id: two different nodes use it (to join branches, "
                    "pass the same Node object to next())",
                    tid,
                )
            if state.get(id(node)) == 1:
                cycle = " -> ".join([*path[path.index(tid) :], tid])
                raise DagValidationError(dag_id, f"cycle detected: {cycle}", tid)
            if state.get(id(node)) == 2:
                continue
            nodes[tid] = node
            order.append(tid)
            state[id(node)] = 1
            path.append(tid)
        if child_idx < len(node.children):
            stack.append((node, child_idx + 1))
            child = node.children[child_idx]
            if state.get(id(child)) == 1:
                ctid = child.task.id()
                cycle = " -> ".join([*path[path.index(ctid) :], ctid])
                raise DagValidationError(dag_id, f"cycle detected: {cycle}", ctid)
            stack.append((child, 0))
        else:
            state[id(node)] = 2
            path.pop()

    parents: dict[str, list[str]] = {tid: [] for tid in nodes}
    for tid, node in nodes.items():
        for child in node.children:
            parents[child.task.id()].append(tid)
    depth = _depths(root.task.id(), nodes, parents)
    # Width: position within the depth level, in breadth-first discovery order.
    bfs = _bfs_order(root)
    width: dict[str, int] = {}
    level_count: dict[int, int] = {}
    for tid in bfs:
        level_count[depth[tid]] = level_count.get(depth[tid], 0) + 1
        width[tid] = level_count[depth[tid]]
    ordered = sorted(nodes, key=lambda t: (depth[t], width[t]))
    return {
        tid: TaskInfo(
            task_id=tid,
            node=nodes[tid],
            parents=tuple(parents[tid]),
            children=tuple(dict.fromkeys(c.task.id() for c in nodes[tid].children)),
            depth=depth[tid],
            width=width[tid],
            config=(config := nodes[tid].own_config or default_config),
            trigger_rule=nodes[tid].trigger_rule,
            code_version=task_code_version(
                task_source(nodes[tid].task), config.version, dag_version
            ),
        )
        for tid in ordered
    }


def _depths(
    root: str, nodes: Mapping[str, Node], parents: Mapping[str, list[str]]
) -> dict[str, int]:
    """Longest-path depth from the root (root = 1): a node sits at its deepest level."""
    indegree = {tid: len(ps) for tid, ps in parents.items()}
    depth = {root: 1}
    ready = [root]
    while ready:
        tid = ready.pop()
        for child in nodes[tid].children:
            ctid = child.task.id()
            depth[ctid] = max(depth.get(ctid, 0), depth[tid] + 1)
            indegree[ctid] -= 1
            if indegree[ctid] == 0:
                ready.append(ctid)
    return depth


def _bfs_order(root: Node) -> list[str]:
    seen = {root.task.id()}
    order = [root.task.id()]
    queue = [root]
    i = 0
    while i < len(queue):
        for child in queue[i].children:
            ctid = child.task.id()
            if ctid not in seen:
                seen.add(ctid)
                order.append(ctid)
                queue.append(child)
        i += 1
    return order
