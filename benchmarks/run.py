"""Benchmarks: a real scheduler and executor over HTTP on loopback, SQLite files in a temp dir.

Each figure is the median of several runs, from the trigger (an API call) to
the DAG run's SUCCESS in the database, as the run's own timestamps record it
(dagruns.InsertTs to dagruns.StatusUpdateTs), plus the wall time the client saw.

    python benchmarks/run.py            # full: 5 runs per workload
    python benchmarks/run.py --quick    # a few seconds: proves the benchmarks still work

Output: one JSON line per figure, then a human table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

import ppacer
from ppacer.db.schema import dagruns
from ppacer.local import LocalRunner
from ppacer.timeutils import parse_ts


class Noop(ppacer.BaseTask):
    """Does nothing."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        return None


class Sleep(ppacer.BaseTask):
    """Sleeps half a second."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        time.sleep(0.5)


def single() -> ppacer.Node:
    return ppacer.Node(Noop("only"))


def chain(n: int) -> Callable[[], ppacer.Node]:
    def build() -> ppacer.Node:
        root = ppacer.Node(Noop("t0"))
        node = root
        for i in range(1, n):
            node = node.next(Noop(f"t{i}"))
        return root

    return build


def fanout(n: int) -> Callable[[], ppacer.Node]:
    def build() -> ppacer.Node:
        root = ppacer.Node(Noop("root"))
        root.next_async_and_merge([Noop(f"b{i}") for i in range(n)], Noop("join"))
        return root

    return build


def sleep20() -> ppacer.Node:
    root = ppacer.Node(Noop("root"))
    root.next_async_and_merge([Sleep(f"s{i}") for i in range(20)], Noop("join"))
    return root


WORKLOADS: dict[str, Callable[[], ppacer.Node]] = {
    "single": single,
    "hello": chain(2),
    "chain50": chain(50),
    "chain100": chain(100),
    "fanout200": fanout(200),
    "wide1000": fanout(1000),
    "sleep20": sleep20,
}


def measure(name: str, runs: int, concurrency: int) -> dict[str, object]:
    registry = ppacer.Registry([ppacer.Dag(name).add_root(WORKLOADS[name]()).done()])
    with tempfile.TemporaryDirectory() as tmp:
        runner = LocalRunner(
            registry,
            str(Path(tmp) / "scheduler.db"),
            str(Path(tmp) / "logs.db"),
            port=0,
            concurrency=concurrency,
        ).start()
        try:
            db_s: list[float] = []
            wall_s: list[float] = []
            for _ in range(runs):
                started = time.perf_counter()
                run_id = runner.client.trigger_dag_run(name)["runId"]
                while True:
                    with runner.scheduler.engine.connect() as conn:
                        row = conn.execute(select(dagruns).where(dagruns.c.RunId == run_id)).one()
                    if row.Status in ("SUCCESS", "FAILED"):
                        break
                    time.sleep(0.0005)
                wall_s.append(time.perf_counter() - started)
                assert row.Status == "SUCCESS", row
                db_s.append((parse_ts(row.StatusUpdateTs) - parse_ts(row.InsertTs)).total_seconds())
        finally:
            runner.stop()
    tasks = len(registry[name].tasks)
    return {
        "workload": name,
        "tasks": tasks,
        "runs": runs,
        "median_s": round(statistics.median(db_s), 4),
        "min_s": round(min(db_s), 4),
        "median_wall_s": round(statistics.median(wall_s), 4),
        "tasks_per_s": round(tasks / statistics.median(db_s), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few runs of the small workloads")
    parser.add_argument("--runs", type=int, default=5, help="runs per workload (median reported)")
    parser.add_argument("--concurrency", type=int, default=8, help="executor concurrency")
    parser.add_argument("workloads", nargs="*", default=None, help=f"any of {list(WORKLOADS)}")
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("PPACER_LOG_LEVEL", "WARNING"))
    names = args.workloads or (
        ["single", "chain50", "fanout200"] if args.quick else list(WORKLOADS)
    )
    runs = 2 if args.quick else args.runs
    results = []
    for name in names:
        result = measure(name, runs, args.concurrency)
        results.append(result)
        print(json.dumps(result), flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"\nmachine: {machine}")
    print(
        f"{'workload':<10} {'tasks':>6} {'median s':>9} {'min s':>8} {'wall s':>8} {'tasks/s':>9}"
    )
    for r in results:
        print(
            f"{r['workload']:<10} {r['tasks']:>6} {r['median_s']:>9} {r['min_s']:>8} "
            f"{r['median_wall_s']:>8} {r['tasks_per_s']:>9}"
        )


if __name__ == "__main__":
    main()
