"""The benchmark DAGs, built from a small JSON spec so every process builds the same registry.

The driver (``run.py``) hands the spec to the scheduler and executor processes
(``procs.py``) on their command line; each calls :func:`build_registry`.

Spec kinds:

- ``{"kind": "latency", "names": ["single", "chain50", ...]}``: the manually
  triggered workload DAGs (no schedule), one per name (``wideN``: a root, ``N``
  tasks, a join, e.g. ``wide10000``).
- ``{"kind": "scheduled", "n": 1000, "tasks": 1, "start": ISO, "interval_s": 10,
  "end": ISO | null, "prefix": "md"}``: ``n`` DAGs of a chain of ``tasks`` tasks,
  all on one fixed schedule (``many_dags``, ``idle``, ``startup``).
- ``{"kind": "history", "names": [...], "dags": 100, "tasks": 10}``: the latency
  DAGs plus ``dags`` unscheduled DAGs (``hist000``...) whose past runs are bulk
  inserted by the ``history`` workload.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import ppacer


class Noop(ppacer.BaseTask):
    """Does nothing."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        return None


class Sleep(ppacer.BaseTask):
    """Sleeps half a second."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        time.sleep(0.5)


def chain(n: int, prefix: str = "t") -> ppacer.Node:
    """``n`` tasks in a line."""
    root = ppacer.Node(Noop(f"{prefix}0"))
    node = root
    for i in range(1, n):
        node = node.next(Noop(f"{prefix}{i}"))
    return root


def fanout(n: int, task: type[ppacer.BaseTask] = Noop) -> ppacer.Node:
    """A root, ``n`` parallel tasks, a join (a DAG has exactly one root)."""
    root = ppacer.Node(Noop("root"))
    root.next_async_and_merge([task(f"b{i}") for i in range(n)], Noop("join"))
    return root


#: The latency workloads: name -> root node builder. ``wide1000`` is 1,000
#: independent tasks between a root and a join (as the original's figure was taken).
LATENCY: dict[str, Callable[[], ppacer.Node]] = {
    "single": lambda: ppacer.Node(Noop("only")),
    "chain50": lambda: chain(50),
    "fanout200": lambda: fanout(200),
    "wide1000": lambda: fanout(1000),
    "sleep20": lambda: fanout(20, Sleep),
}


def latency_root(name: str) -> ppacer.Node:
    """The root of a latency workload: one of :data:`LATENCY`, or ``wideN`` (a root,
    ``N`` independent tasks, a join: ``wide10000`` is the scale workload)."""
    if name in LATENCY:
        return LATENCY[name]()
    if name.startswith("wide") and name[4:].isdigit():
        return fanout(int(name[4:]))
    raise KeyError(f"no latency workload {name!r}")


def latency_dags(names: list[str]) -> list[ppacer.Dag]:
    """One manually triggered DAG per latency workload name (the DAG id is the name)."""
    return [ppacer.Dag(name).add_root(latency_root(name)).done() for name in names]


def scheduled_dags(spec: dict[str, Any]) -> list[ppacer.Dag]:
    """``n`` DAGs, each a chain of ``tasks`` tasks on the same fixed schedule."""
    start = datetime.fromisoformat(spec["start"])
    end = datetime.fromisoformat(spec["end"]) if spec.get("end") else None
    interval = timedelta(seconds=spec["interval_s"])
    prefix = spec.get("prefix", "md")
    width = len(str(spec["n"]))
    return [
        ppacer.Dag(f"{prefix}{i:0{width}d}")
        .add_schedule(ppacer.FixedSchedule(start, interval, end))
        .add_root(chain(spec["tasks"]))
        .done()
        for i in range(spec["n"])
    ]


def history_dag_ids(n: int) -> list[str]:
    """Ids of the DAGs whose past runs the ``history`` workload inserts."""
    return [f"hist{i:03d}" for i in range(n)]


def build_registry(spec: dict[str, Any]) -> ppacer.Registry:
    """The registry a spec describes (the same in every process)."""
    kind = spec["kind"]
    if kind == "latency":
        return ppacer.Registry(latency_dags(spec["names"]))
    if kind == "scheduled":
        return ppacer.Registry(scheduled_dags(spec))
    if kind == "history":
        dags = latency_dags(spec["names"])
        dags += [
            ppacer.Dag(dag_id).add_root(chain(spec["tasks"])).done()
            for dag_id in history_dag_ids(spec["dags"])
        ]
        return ppacer.Registry(dags)
    raise ValueError(f"unknown workload spec kind {kind!r}")
