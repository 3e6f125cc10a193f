"""Soak: a scheduler and an executor (two processes) under a steady load for N minutes.

    python benchmarks/soak.py --minutes 30                 # SQLite files
    python benchmarks/soak.py --minutes 30 --db postgresql://postgres@127.0.0.1:5432/postgres
    python benchmarks/soak.py --minutes 2 --check          # CI: exit 1 on an ERROR line,
                                                           # a failed or unfinished run

The load: ``--dags`` DAGs (default 50, a chain of ``--tasks`` tasks each) scheduled
every ``--interval-s`` (5 s), plus one DAG of 200 tasks (a root, 198 parallel
tasks, a join) every minute, for ``--minutes``; then the runs in flight get up to
``--drain-s`` to finish. Every ``--sample-s`` (10 s) the RSS of both processes and
the size of the databases are sampled. The report (a table, then one JSON line;
``--out`` writes the JSON to a file too):

- RSS slope after warm-up (``--warmup-s``, default a quarter of the run, at most
  5 min), MiB/hour, a least-squares line through the samples, per process;
- schedule lag: a run's InsertTs - ExecTs (the watcher's delay) and its first
  task attempt's InsertTs - ExecTs (to the first task scheduled), p50/p99/max;
- runs by status (and how many points were expected), ERROR/WARNING log lines
  and tracebacks in the processes' stderr;
- database size (SQLite: files with their WAL; PostgreSQL: ``pg_database_size``)
  at the first sample after warm-up and at the end, and the growth per hour.

With a role as first argument (``scheduler``, ``executor``) this file is the
process under test: ``procs.py`` with the soak registry.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ppacer

ROLES = ("scheduler", "executor")
BIG_TASKS = 200
BIG_DAG = "soakbig"
PREFIX = "soak"


# ---------------------------------------------------------------------- the registry


def soak_registry(spec: dict[str, Any]) -> ppacer.Registry:
    """``spec["dags"]`` chains on one schedule plus the 200-task DAG every minute."""
    from workloads import chain, fanout

    start = datetime.fromisoformat(spec["start"])
    end = datetime.fromisoformat(spec["end"])
    every = ppacer.FixedSchedule(start, timedelta(seconds=spec["interval_s"]), end)
    width = len(str(spec["dags"]))
    dags = [
        ppacer.Dag(f"{PREFIX}{i:0{width}d}")
        .add_schedule(every)
        .add_root(chain(spec["tasks"]))
        .done()
        for i in range(spec["dags"])
    ]
    minutely = ppacer.FixedSchedule(start, timedelta(minutes=1), end)
    dags.append(ppacer.Dag(BIG_DAG).add_schedule(minutely).add_root(fanout(BIG_TASKS - 2)).done())
    return ppacer.Registry(dags)


def serve_role() -> None:
    """Run ``procs.py``'s role with the soak registry (this file as the process under test)."""
    import procs

    procs.build_registry = soak_registry  # type: ignore[assignment]
    procs.main()


# ---------------------------------------------------------------------- measuring


def rss_mb(pid: int) -> float:
    """Resident set size (VmRSS) of a process now, MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def db_size_mb(db: Any) -> float:
    """The databases' size now: SQLite files (with WAL) or the PostgreSQL database, MiB."""
    if db.kind == "sqlite":
        total = 0
        for path in Path(db.dir).iterdir():
            total += path.stat().st_size
        return total / 2**20
    from sqlalchemy import text

    with db.engine.connect() as conn:
        return (
            int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
            / 2**20
        )


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per hour (NaN below 3 points)."""
    if len(points) < 3:
        return float("nan")
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return float("nan")
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 3600


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def lags(db: Any, since: str) -> dict[str, Any]:
    """Runs by status and the schedule lags of the runs whose ExecTs >= ``since``."""
    from sqlalchemy import func, select

    from ppacer.db.schema import dagruns, dagruntasks
    from ppacer.timeutils import parse_ts

    first_task = (
        select(
            dagruntasks.c.DagId,
            dagruntasks.c.ExecTs,
            func.min(dagruntasks.c.InsertTs).label("FirstTs"),
        )
        .group_by(dagruntasks.c.DagId, dagruntasks.c.ExecTs)
        .subquery()
    )
    query = (
        select(
            dagruns.c.DagId,
            dagruns.c.ExecTs,
            dagruns.c.InsertTs,
            dagruns.c.Status,
            first_task.c.FirstTs,
        )
        .select_from(
            dagruns.outerjoin(
                first_task,
                (first_task.c.DagId == dagruns.c.DagId) & (first_task.c.ExecTs == dagruns.c.ExecTs),
            )
        )
        .where(dagruns.c.DagId.like(f"{PREFIX}%"))
    )
    with db.engine.connect() as conn:
        rows = list(conn.execute(query))
    status: dict[str, int] = {}
    insert_lag: list[float] = []
    task_lag: list[float] = []
    big_task_lag: list[float] = []
    for row in rows:
        status[row.Status] = status.get(row.Status, 0) + 1
        exec_ts = parse_ts(row.ExecTs)
        if row.ExecTs < since:
            continue
        insert_lag.append((parse_ts(row.InsertTs) - exec_ts).total_seconds())
        if row.FirstTs is not None:
            lag = (parse_ts(row.FirstTs) - exec_ts).total_seconds()
            (big_task_lag if row.DagId == BIG_DAG else task_lag).append(lag)

    def stats(values: list[float]) -> dict[str, float]:
        return {
            "n": len(values),
            "p50_s": quantile(values, 0.5),
            "p99_s": quantile(values, 0.99),
            "max_s": max(values) if values else float("nan"),
        }

    return {
        "runs": len(rows),
        "status": status,
        "run_insert_lag": stats(insert_lag),
        "first_task_lag": stats(task_lag + big_task_lag),
        "first_task_lag_big_dag": stats(big_task_lag),
    }


_LEVEL = re.compile(r"^\S+ \S+ (ERROR|WARNING|CRITICAL) ")


def log_counts(sizes: dict[Path, int]) -> dict[str, Any]:
    """ERROR (and CRITICAL), WARNING and traceback lines in the first ``size`` bytes of
    each process's stderr."""
    counts = {"error_lines": 0, "warning_lines": 0, "tracebacks": 0}
    samples: list[str] = []
    for path, size in sizes.items():
        with open(path, "rb") as f:
            written = f.read(size).decode(errors="replace")
        for line in written.splitlines():
            match = _LEVEL.match(line)
            if line.startswith("Traceback"):
                counts["tracebacks"] += 1
            if match is None:
                continue
            if match[1] == "WARNING":
                counts["warning_lines"] += 1
            else:
                counts["error_lines"] += 1
            if len(samples) < 10:
                samples.append(f"{path.stem}: {line[:300]}")
    return {**counts, "log_samples": samples}


# ---------------------------------------------------------------------- the soak


def soak(args: argparse.Namespace) -> dict[str, Any]:
    """Run the soak; return the report."""
    from harness import Database, Deployment, temp_root

    duration_s = args.minutes * 60
    warmup_s = args.warmup_s if args.warmup_s is not None else min(300.0, duration_s / 4)
    with temp_root() as root, Database(args.db, root) as db:
        logs = root / "logs"
        logs.mkdir()
        # First point a little after the processes are up; with catch-up off nothing
        # before it runs. The points end with the soak.
        now = datetime.now(UTC)
        start = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while start - now > timedelta(seconds=args.interval_s * 2 + 20):
            start -= timedelta(seconds=args.interval_s)
        spec = {
            "dags": args.dags,
            "tasks": args.tasks,
            "interval_s": args.interval_s,
            "start": start.isoformat(),
            "end": (start + timedelta(seconds=duration_s - 0.001)).isoformat(),
        }
        db.create_tables()
        with Deployment(
            "separate",
            spec,
            db,
            logs,
            label="soak",
            concurrency=args.concurrency,
            log_level="WARNING",
            script=Path(__file__).resolve(),
        ) as dep:
            pids = {role: proc.pid for role, proc in dep.procs.items()}
            samples: list[dict[str, float]] = []
            origin = start.timestamp()
            progress = open(args.progress, "a") if args.progress else None  # noqa: SIM115
            try:
                while time.time() < origin:
                    time.sleep(0.2)
                next_at = time.monotonic()
                end_at = next_at + duration_s
                while True:
                    sample = {"t_s": round(time.time() - origin, 1), "db_mb": db_size_mb(db)}
                    for role, pid in pids.items():
                        sample[f"{role}_rss_mb"] = rss_mb(pid)
                    samples.append(sample)
                    if progress is not None:
                        progress.write(json.dumps(sample) + "\n")
                        progress.flush()
                    for role, proc in dep.procs.items():
                        if proc.popen.poll() is not None:
                            raise RuntimeError(f"{role} exited:\n{proc.stderr_tail()}")
                    next_at += args.sample_s
                    if next_at > end_at:
                        break
                    time.sleep(max(0.0, next_at - time.monotonic()))
                # Let the runs in flight finish (no new points come after the end).
                drain_until = time.monotonic() + args.drain_s
                while time.monotonic() < drain_until:
                    report = lags(db, spec["start"])
                    if (
                        report["status"].get("RUNNING", 0) + report["status"].get("SCHEDULED", 0)
                        == 0
                    ):
                        break
                    time.sleep(1.0)
                report = lags(db, spec["start"])
                # Lines written while stopping (an executor that finds the scheduler
                # gone) are not the soak's.
                measured = {p.stderr_path: p.stderr_path.stat().st_size for p in dep.procs.values()}
            finally:
                if progress is not None:
                    progress.close()
        counts = log_counts(measured)
    warm = [s for s in samples if s["t_s"] >= warmup_s]
    expected = math.ceil(duration_s / args.interval_s) * args.dags + math.ceil(duration_s / 60)
    result: dict[str, Any] = {
        "database": db.kind,
        "minutes": args.minutes,
        "warmup_s": warmup_s,
        "load": f"{args.dags} DAGs x {args.tasks} tasks every {args.interval_s:g} s "
        f"+ a {BIG_TASKS}-task DAG every minute",
        "cpus": os.cpu_count(),
        "samples": len(samples),
        "expected_runs": expected,
        **report,
        **counts,
    }
    for role in pids:
        key = f"{role}_rss_mb"
        points = [(s["t_s"], s[key]) for s in warm]
        result[f"{role}_rss"] = {
            "first_mb": samples[0][key],
            "after_warmup_mb": warm[0][key] if warm else float("nan"),
            "last_mb": samples[-1][key],
            "max_mb": max(s[key] for s in samples),
            "slope_mib_per_h": slope_per_hour(points),
        }
    db_first = warm[0] if warm else samples[0]
    span_h = (samples[-1]["t_s"] - db_first["t_s"]) / 3600
    result["db"] = {
        "after_warmup_mb": db_first["db_mb"],
        "last_mb": samples[-1]["db_mb"],
        "growth_mb": samples[-1]["db_mb"] - db_first["db_mb"],
        "growth_mib_per_h": (samples[-1]["db_mb"] - db_first["db_mb"]) / span_h
        if span_h
        else float("nan"),
        "slope_mib_per_h": slope_per_hour([(s["t_s"], s["db_mb"]) for s in warm]),
    }
    result["sample_series"] = samples
    return result


def print_table(r: dict[str, Any]) -> None:
    """The report as a table."""
    rows = [
        (
            "length",
            f"{r['minutes']:g} min ({r['samples']} samples), warm-up {r['warmup_s']:.0f} s, "
            f"{r['database']}, {r['cpus']} CPUs",
        ),
        ("load", r["load"]),
        ("runs", f"{r['runs']} of {r['expected_runs']} points: {r['status']}"),
    ]
    for role in ROLES:
        rss = r.get(f"{role}_rss")
        if rss is None:
            continue
        rows.append(
            (
                f"{role} RSS",
                f"{rss['first_mb']:.0f} -> {rss['after_warmup_mb']:.0f} (warm) -> "
                f"{rss['last_mb']:.0f} MiB, "
                f"max {rss['max_mb']:.0f}; slope after warm-up {rss['slope_mib_per_h']:+.1f} MiB/h",
            )
        )
    for key, label in (
        ("run_insert_lag", "lag ExecTs -> run"),
        ("first_task_lag", "lag ExecTs -> 1st task"),
        ("first_task_lag_big_dag", "  of which 200-task DAG"),
    ):
        s = r[key]
        rows.append(
            (
                label,
                f"p50 {s['p50_s']:.3f} s, p99 {s['p99_s']:.3f} s, max {s['max_s']:.3f} s "
                f"(n={s['n']})",
            )
        )
    rows.append(
        (
            "log lines",
            f"ERROR {r['error_lines']}, WARNING {r['warning_lines']}, tracebacks {r['tracebacks']}",
        )
    )
    d = r["db"]
    rows.append(
        (
            "DB size",
            f"{d['after_warmup_mb']:.1f} -> {d['last_mb']:.1f} MiB after warm-up "
            f"(+{d['growth_mb']:.1f} MiB, {d['growth_mib_per_h']:.0f} MiB/h)",
        )
    )
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    for line in r["log_samples"]:
        print(f"  {line}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ROLES:
        serve_role()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--db", default=None, help="PostgreSQL base URL (default: SQLite files)")
    parser.add_argument("--dags", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=2, help="tasks in each of the --dags DAGs")
    parser.add_argument("--interval-s", type=float, default=5.0)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=None)
    parser.add_argument("--drain-s", type=float, default=120.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", default=None, help="write the JSON report here too")
    parser.add_argument("--progress", default=None, help="append each sample here as it is taken")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 on an ERROR line, a traceback, a failed run or a run not finished",
    )
    args = parser.parse_args()
    result = soak(args)
    series = result.pop("sample_series")
    print_table(result)
    print(json.dumps(result))
    if args.out:
        Path(args.out).write_text(json.dumps({**result, "sample_series": series}, indent=1))
    if args.check:
        bad = {k: v for k, v in result["status"].items() if k != "SUCCESS"}
        if bad or result["error_lines"] or result["tracebacks"]:
            print(
                f"soak check failed: runs not SUCCESS {bad}, ERROR lines {result['error_lines']}, "
                f"tracebacks {result['tracebacks']}",
                file=sys.stderr,
            )
            raise SystemExit(1)


if __name__ == "__main__":
    main()
