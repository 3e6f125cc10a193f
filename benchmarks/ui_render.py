"""Server render time of the web UI's pages, with 1,000 runs and a 200-task DAG in the database.

    python benchmarks/ui_render.py              # median of 20 requests per page
    python benchmarks/ui_render.py --runs 50

Each figure is the wall time of one GET through the scheduler's ASGI app in
this process (routing, the page's database reads, building the view, Jinja
rendering, security headers); no network and no browser. The database is a
fresh SQLite file seeded the way a scheduler that ran for a while leaves it:
1,000 finished runs of a 6-task DAG (every 10th FAILED, with an error), one
run of a 200-task DAG (1 -> 198 -> 1) whose tasks all finished, a few after a
retry, and 1,000 runs of a 50-task DAG (every attempt queued, taken by one of
three executors and ended; every 10th run failed; parameters on every third
run; two log lines per attempt: 100,000 lines in the log search index) for
the DAG page, the run page's sorted table, search and log search. Target (the
web UI issue): under 300 ms per page; not asserted.

Output: one JSON line per page (``{"page", "path", "median_ms", "min_ms",
"max_ms", "n", "bytes", "target_ms"}``), then a table for people.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2

import ppacer
from ppacer.dag.status import DagRunStatus, TaskStatus
from ppacer.db import dagruns as runs_db
from ppacer.db import dagruntasks as tasks_db
from ppacer.db import schema
from ppacer.db.engine import open_logs_db, open_scheduler_db
from ppacer.db.schema import dagrunparams, dagruns, dagruntaskerrors, dagruntasks, tasklogs
from ppacer.timeutils import format_ts

TARGET_MS = 300.0
T0 = datetime(2024, 3, 11, tzinfo=UTC)


class Noop(ppacer.BaseTask):
    """A task that does nothing (the benchmark never runs tasks)."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        del ctx


def history_dag() -> ppacer.Dag:
    """extract -> [a, b, c] -> report, plus load after report: 6 tasks."""
    root = ppacer.Node(Noop("extract"))
    report = root.next_async_and_merge([Noop("a"), Noop("b"), Noop("c")], Noop("report"))
    report.next(Noop("load"))
    return ppacer.Dag("history").add_root(root).done()


def wide_dag(width: int = 198) -> ppacer.Dag:
    """start -> ``width`` tasks -> end (200 tasks by default)."""
    root = ppacer.Node(Noop("start"))
    root.next_async_and_merge([Noop(f"task_{i:03d}") for i in range(width)], Noop("end"))
    return ppacer.Dag("wide200").add_root(root).done()


def grid_dag(width: int = 48) -> ppacer.Dag:
    """extract -> ``width`` loads -> report: 50 tasks (the DAG page's grid: 100 runs x 50)."""
    root = ppacer.Node(Noop("extract"))
    root.next_async_and_merge([Noop(f"load_{i:02d}") for i in range(width)], Noop("report"))
    return ppacer.Dag("wide50").add_root(root).done()


def seed_grid(db: Path, logs_db: Path, dag: ppacer.Dag, runs: int, first_run_id: int) -> None:
    """``runs`` finished runs of ``dag`` in multi-row statements, with starts and log lines."""
    order = list(dag.tasks)
    run_rows, attempts, starts, errors, given, lines = [], [], [], [], [], []
    t0 = T0 + timedelta(days=30)
    for i in range(runs):
        at = t0 + timedelta(minutes=10 * i)
        exec_ts = format_ts(at)
        failed = i % 10 == 9
        for n, task_id in enumerate(order):
            queued = at + timedelta(milliseconds=20 * n)
            taken = queued + timedelta(milliseconds=150 + 7 * (i % 11))
            done = taken + timedelta(milliseconds=300 + 13 * ((i + n) % 17))
            status = TaskStatus.FAILED if failed and task_id == "load_24" else TaskStatus.SUCCESS
            key = {"DagId": dag.id, "ExecTs": exec_ts, "TaskId": task_id, "Retry": 0}
            attempts.append(
                key
                | {
                    "InsertTs": format_ts(queued),
                    "Status": str(status),
                    "StatusUpdateTs": format_ts(done),
                    "Version": "bench",
                }
            )
            starts.append(
                key
                | {
                    "StartTs": format_ts(taken),
                    "Executor": f"worker-{i % 3}",
                    "CodeVersion": dag.tasks[task_id].code_version,
                }
            )
            if status is TaskStatus.FAILED:
                errors.append(
                    key | {"InsertTs": format_ts(done), "Error": "ConnectionError: refused"}
                )
            for k, (level, text) in enumerate(
                (
                    ("INFO", f"{task_id}: processed {1000 + i} rows of batch {i}"),
                    ("WARNING", f"{task_id}: timeout waiting for lock; retrying")
                    if (i + n) % 7 == 0
                    else ("ERROR", f"{task_id}: connection refused by db.example.com")
                    if status is TaskStatus.FAILED
                    else ("DEBUG", f"{task_id}: cursor took 0.{i % 10}s"),
                )
            ):
                lines.append(
                    key
                    | {
                        "InsertTs": format_ts(taken + timedelta(milliseconds=k)),
                        "Level": level,
                        "Message": text,
                        "Attributes": "{}",
                        "Seq": k,
                    }
                )
        run_id = first_run_id + i
        status = DagRunStatus.FAILED if failed else DagRunStatus.SUCCESS
        run_rows.append(
            {
                "RunId": run_id,
                "DagId": dag.id,
                "ExecTs": exec_ts,
                "InsertTs": exec_ts,
                "Status": str(status),
                "StatusUpdateTs": format_ts(at + timedelta(seconds=2)),
                "Version": "bench",
            }
        )
        if i % 3 == 0:
            given.append({"RunId": run_id, "Params": json.dumps({"day": i % 30, "region": "eu"})})
    # How attempts started: their own table where the schema has one, else dagruntasks.
    starts_table = schema.metadata.tables.get("dagruntaskstarts")
    if starts_table is None:
        attempts = [a | s for a, s in zip(attempts, starts, strict=True)]
    engine = open_scheduler_db(str(db))
    with engine.begin() as conn:
        conn.execute(dagruns.insert(), run_rows)
        conn.execute(dagruntasks.insert(), attempts)
        if starts_table is not None:
            conn.execute(starts_table.insert(), starts)
        conn.execute(dagruntaskerrors.insert(), errors)
        conn.execute(dagrunparams.insert(), given)
    engine.dispose()
    logs = open_logs_db(str(logs_db))
    with logs.begin() as conn:
        conn.execute(tasklogs.insert(), lines)
    logs.dispose()


def seed(db: Path, logs_db: Path, history: ppacer.Dag, wide: ppacer.Dag, runs: int) -> None:
    """Write the finished runs, task attempts, errors and log lines the pages read."""
    engine = open_scheduler_db(str(db))
    tasks = list(history.tasks)
    with engine.begin() as conn:
        for i in range(runs):
            at = T0 + timedelta(minutes=10 * i)
            exec_ts, end_ts = format_ts(at), format_ts(at + timedelta(seconds=3))
            failed = i % 10 == 9
            status = DagRunStatus.FAILED if failed else DagRunStatus.SUCCESS
            run_id = runs_db.insert_dag_run(conn, history.id, exec_ts, exec_ts, "bench", status)
            runs_db.update_dag_run_status(conn, run_id, status, end_ts)
            attempts = [
                (t, 0, TaskStatus.FAILED if failed and t == "b" else TaskStatus.SUCCESS)
                for t in tasks
            ]
            tasks_db.insert_dag_run_tasks(conn, history.id, exec_ts, attempts, exec_ts, "bench")
            if failed:
                tasks_db.insert_task_error(
                    conn, history.id, exec_ts, "b", 0, "RuntimeError: seeded failure", end_ts
                )
        exec_ts = format_ts(T0)
        runs_db.insert_dag_run(conn, wide.id, exec_ts, exec_ts, "bench", DagRunStatus.SUCCESS)
        for n, task_id in enumerate(wide.tasks):
            start = format_ts(T0 + timedelta(milliseconds=5 * n))
            end = format_ts(T0 + timedelta(milliseconds=5 * n + 40))
            if n % 40 == 7:  # a few tasks needed a retry
                tasks_db.insert_dag_run_tasks(
                    conn,
                    wide.id,
                    exec_ts,
                    [(task_id, 0, TaskStatus.FAILED_PENDING_RETRY)],
                    start,
                    "bench",
                )
                tasks_db.insert_task_error(
                    conn, wide.id, exec_ts, task_id, 0, "TimeoutError: seeded", end
                )
                tasks_db.insert_dag_run_tasks(
                    conn, wide.id, exec_ts, [(task_id, 1, TaskStatus.SUCCESS)], end, "bench"
                )
            else:
                tasks_db.insert_dag_run_tasks(
                    conn, wide.id, exec_ts, [(task_id, 0, TaskStatus.SUCCESS)], start, "bench"
                )
            tasks_db.update_dag_run_task_status(
                conn, wide.id, exec_ts, task_id, 1 if n % 40 == 7 else 0, TaskStatus.SUCCESS, end
            )
    engine.dispose()
    logs = open_logs_db(str(logs_db))
    with logs.begin() as conn:
        conn.execute(
            tasklogs.insert(),
            [
                {
                    "DagId": wide.id,
                    "ExecTs": format_ts(T0),
                    "TaskId": "start",
                    "Retry": 0,
                    "InsertTs": format_ts(T0 + timedelta(milliseconds=i)),
                    "Level": "WARNING" if i % 50 == 0 else "INFO",
                    "Message": f"line {i}: processed <batch> {i * 17}",
                    "Attributes": json.dumps({"i": i}),
                }
                for i in range(1000)
            ],
        )
    logs.dispose()


async def measure(app: Any, path: str, n: int) -> tuple[list[float], int]:
    """Wall times (ms) of ``n`` GETs of ``path`` after two warm-up requests; the page size."""
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        size = 0
        for _ in range(2):
            answer = await client.get(path)
            assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
            size = len(answer.content)
        times = []
        for _ in range(n):
            started = time.perf_counter()
            answer = await client.get(path)
            times.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200
        return times, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="requests per page (median of)")
    parser.add_argument("--history", type=int, default=1000, help="finished runs to seed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    history, wide, grid = history_dag(), wide_dag(), grid_dag()
    with tempfile.TemporaryDirectory(prefix="ppacer-ui-bench-") as tmp:
        db, logs_db = Path(tmp) / "scheduler.db", Path(tmp) / "logs.db"
        seed(db, logs_db, history, wide, args.history)
        wide_run = args.history + 1
        first_grid_run = wide_run + 1
        seed_grid(db, logs_db, grid, args.history, first_grid_run)
        last_grid_run = first_grid_run + args.history - 1
        middle = format_ts(T0 + timedelta(days=30, minutes=10 * (args.history // 2)))
        scheduler = ppacer.Scheduler(str(db), logs_db=str(logs_db))
        app = scheduler.start(ppacer.Registry([history, wide, grid]))
        pages = [
            ("runs (50 of 1,000)", "/ui/runs"),
            ("runs (all 1,000 on one page)", "/ui/runs?size=1000"),
            ("runs, live fragment", "/ui/runs?fragment=live"),
            ("runs, failed only", "/ui/runs?status=failed"),
            ("run detail, 200 tasks", f"/ui/runs/{wide_run}"),
            ("run detail, 200 tasks, task open", f"/ui/runs/{wide_run}?task=task_007"),
            ("run detail, 200 tasks, live fragment", f"/ui/runs/{wide_run}?fragment=live"),
            ("overview", "/ui"),
            ("DAGs", "/ui/dags"),
            ("task logs, 1,000 lines", f"/ui/runs/{wide_run}/logs?task=start"),
            (
                "task logs, 1,000 lines, level + text filter",
                f"/ui/runs/{wide_run}/logs?task=start&level=WARNING&grep=batch",
            ),
            ("DAG page, 1,000 runs x 50 tasks (grid 100 x 50)", "/ui/dag/wide50"),
            ("DAG page, live fragment (grid, chart)", "/ui/dag/wide50?fragment=live"),
            ("DAG page, an older grid page", f"/ui/dag/wide50?before={quote(middle)}"),
            ("DAG page, a task's code and diff", "/ui/dag/wide50?code=load_07"),
            ("run page, 50 tasks, sorted by duration", f"/ui/runs/{last_grid_run}?sort=-duration"),
            ("run page, 50 tasks, filtered", f"/ui/runs/{last_grid_run}?status=FAILED&name=load"),
            ("search: a DAG and its runs", "/ui/search?q=wide50"),
            ("search: failed runs of every DAG", "/ui/search?q=status:failed"),
            ("search: runs by parameter", "/ui/search?q=day%3D9+region%3Deu"),
            ("search: runs in a time range", "/ui/search?q=from:2024-04-12+to:2024-04-13"),
            ("log search, 100,000 lines: a common word", "/ui/logs/search?q=processed"),
            (
                "log search: a phrase, one DAG",
                "/ui/logs/search?q=%22connection+refused%22&dag=wide50",
            ),
            ("log search: WARNING and above", "/ui/logs/search?q=timeout+lock&level=WARNING"),
        ]
        results = []
        for name, path in pages:
            times, size = asyncio.run(measure(app, path, args.runs))
            row = {
                "page": name,
                "path": path,
                "median_ms": round(statistics.median(times), 2),
                "min_ms": round(min(times), 2),
                "max_ms": round(max(times), 2),
                "n": args.runs,
                "bytes": size,
                "target_ms": TARGET_MS,
            }
            results.append(row)
            print(json.dumps(row), flush=True)
        scheduler.close()
    print(
        f"\nPython {platform.python_version()}, SQLite; median of {args.runs} requests per page\n"
    )
    print(f"| page | median ms | min ms | max ms | KiB | < {TARGET_MS:g} ms |")
    print("|---|---:|---:|---:|---:|---|")
    for r in results:
        ok = "yes" if r["median_ms"] < TARGET_MS else "NO"
        print(
            f"| {r['page']} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | {r['max_ms']:.1f} "
            f"| {r['bytes'] / 1024:.0f} | {ok} |"
        )


if __name__ == "__main__":
    main()
