"""What 1,000 task log lines cost: written straight to the logs DB, or shipped to the scheduler.

    python benchmarks/log_shipping.py [--runs 7] [--lines 1000]

Three ways, each timed over ``--runs`` attempts of ``--lines`` lines (SQLite
files in a temporary directory), medians printed as JSON:

- ``direct``: the logs-DB handler (``ppacer.tasklog.TaskLogHandler``) on the
  scheduler's engine, as ``ppacer run`` (scheduler and executor in one process)
  writes today: one transaction per line, in the task's thread;
- ``ship_in_process``: the executor's log shipper to a scheduler in the same
  process (what ``ppacer run`` would do if it shipped);
- ``ship_remote``: the log shipper to a scheduler in another process (what a
  remote executor does).

Per mode: ``emit_ms``, the task thread's time to log the lines (what the task
pays); ``stored_ms``, from the first line until every line is stored (for a
shipper: until ``finish_attempt`` returns, as before a final report); and
``cpu_ms``, the CPU time of this process plus the scheduler's process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ppacer
from ppacer.api.client import Client
from ppacer.dag.task import task_logger
from ppacer.executor.logship import LogShipper, attempt_key
from ppacer.local import LocalRunner
from ppacer.tasklog import TaskLogHandler

EXEC_TS = "2024-03-11T12:00:00.000000UTC+00:00"
_TICKS = os.sysconf("SC_CLK_TCK")


@ppacer.task
def talk(ctx: ppacer.TaskContext) -> None:
    """The attempt whose lines are written (it never runs: no executor)."""


DAGS = ppacer.Registry([ppacer.Dag("bench").add_root(ppacer.Node(talk)).done()])


def cpu_ms(pid: int) -> float:
    """User + system CPU time of process ``pid``, in milliseconds (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / _TICKS


def one_attempt(
    handler: logging.Handler, retry: int, lines: int, finish: LogShipper | None, pids: list[int]
) -> dict[str, float]:
    base = logging.Logger("ppacer.task")
    base.addHandler(handler)
    logger = task_logger(base, "bench", EXEC_TS, "talk", retry)
    cpu0 = sum(cpu_ms(p) for p in pids)
    t0 = time.perf_counter()
    for n in range(lines):
        logger.info("line %d of the benchmark, a typical length of text", n, extra={"n": n})
    t1 = time.perf_counter()
    if finish is not None:
        finish.finish_attempt(attempt_key("bench", EXEC_TS, "talk", retry), wait_s=60)
    t2 = time.perf_counter()
    cpu1 = sum(cpu_ms(p) for p in pids)
    return {"emit_ms": (t1 - t0) * 1000, "stored_ms": (t2 - t0) * 1000, "cpu_ms": cpu1 - cpu0}


def medians(samples: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(s[key] for s in samples), 2) for key in samples[0]} | {
        "runs": len(samples)
    }


def count_stored(logs_db: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(logs_db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM tasklogs").fetchone()[0])
    finally:
        conn.close()


def bench_in_process(where: Path, runs: int, lines: int) -> dict[str, dict[str, float]]:
    runner = LocalRunner(
        DAGS, str(where / "s.db"), str(where / "l.db"), port=0, with_executor=False
    ).start()
    try:
        runner.client.trigger_dag_run("bench", exec_ts=EXEC_TS)
        assert runner.scheduler.logs_engine is not None
        direct = TaskLogHandler(runner.scheduler.logs_engine)
        out = {
            "direct": medians(
                [one_attempt(direct, r, lines, None, [os.getpid()]) for r in range(runs)]
            )
        }
        shipper = LogShipper(runner.new_client(), "bench")
        out["ship_in_process"] = medians(
            [one_attempt(shipper, 100 + r, lines, shipper, [os.getpid()]) for r in range(runs)]
        )
        shipper.shutdown()
        assert count_stored(where / "l.db") == 2 * runs * lines
        return out
    finally:
        runner.stop()


def bench_remote(where: Path, runs: int, lines: int) -> dict[str, float]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(where)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        client = Client(url)
        client.trigger_dag_run("bench", exec_ts=EXEC_TS)
        shipper = LogShipper(client, "bench")
        result = medians(
            [one_attempt(shipper, r, lines, shipper, [os.getpid(), proc.pid]) for r in range(runs)]
        )
        shipper.shutdown()
        assert count_stored(where / "l.db") == runs * lines
        return result
    finally:
        proc.terminate()
        proc.wait(30)


def serve(where: Path) -> None:
    """The remote scheduler: print its URL, serve until terminated."""
    import signal
    import threading

    runner = LocalRunner(
        DAGS, str(where / "s.db"), str(where / "l.db"), port=0, with_executor=False
    ).start()
    print(runner.url, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    runner.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve))
        return
    logging.getLogger("ppacer").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as local, tempfile.TemporaryDirectory() as remote:
        result = bench_in_process(Path(local), args.runs, args.lines)
        result["ship_remote"] = bench_remote(Path(remote), args.runs, args.lines)
    print(json.dumps({"lines_per_attempt": args.lines, "medians": result}, indent=2))


if __name__ == "__main__":
    main()
