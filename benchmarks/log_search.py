"""Log search over 1,000,000 task log lines, on SQLite and PostgreSQL.

    python benchmarks/log_search.py                      # both databases, 1,000,000 lines
    python benchmarks/log_search.py --lines 100000 --only sqlite
    python benchmarks/log_search.py --pg postgresql://postgres@127.0.0.1:5432/postgres

Builds a logs DB through the migrations (so with the full-text index of
revision ``0003_log_search``) and writes the lines into it through that index
(SQLite's triggers, PostgreSQL's GIN index): 1,000 runs x 50 tasks x 20 lines
of realistic task logs (row counts, hosts, URLs, file paths, ids, retries,
timeouts, tracebacks; 85 % INFO, 8 % DEBUG, 5 % WARNING, 2 % ERROR). Then each
query below runs ``--repeat`` times through :func:`ppacer.db.logsearch.search_logs`
(the one query interface of the API and the UI), a page of 50 newest first,
and again with the line numbers of the page's hits (what the API answers).
On PostgreSQL it creates its own database and drops it afterwards.

Output: one JSON line per database, then a table: p50 and p99 in ms, hits on
the page; the size of what search adds (the index; on PostgreSQL also the
stored vectors and the time index) and of the table without it.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text

from ppacer.db.engine import database_url, open_logs_db
from ppacer.db.logsearch import LogFilters, line_position, search_logs
from ppacer.db.schema import tasklogs
from ppacer.timeutils import format_ts

T0 = datetime(2024, 3, 11, tzinfo=UTC)
DAGS = [f"etl_{name}" for name in ("orders", "users", "events", "billing", "search")]
TASKS_PER_RUN = 50
LINES_PER_TASK = 20
BATCH = 20_000


def queries(lines: int) -> list[tuple[str, str, LogFilters]]:
    """(name, query, filters): what people look for in logs, for data of ``lines`` lines."""
    runs = max(1, lines // (TASKS_PER_RUN * LINES_PER_TASK))
    # A day in the middle of the data (a run every 10 minutes).
    middle = T0 + timedelta(minutes=10 * runs // 2)
    window = LogFilters(from_ts=format_ts(middle), to_ts=format_ts(middle + timedelta(days=1)))
    return [
        ("rare id (one run's order)", f"order {(runs * 3 // 4) * 1000 + 42}", LogFilters()),
        ("word in 3% of lines", "timeout", LogFilters()),
        ("phrase", '"connection refused"', LogFilters()),
        ("prefix", "deadl*", LogFilters()),
        ("common word, one DAG", "processed", LogFilters(dag_id="etl_billing")),
        (
            "common word, one task of one DAG",
            "processed",
            LogFilters(dag_id="etl_users", task_id="task_07"),
        ),
        ("ERROR lines with a word", "retrying", LogFilters(min_level="ERROR")),
        ("word in a day's window", "timeout", window),
        ("host name", "db.example.com", LogFilters()),
        ("no hit", "zebra", LogFilters()),
    ]


def _message(rng: random.Random, run: int, task: int, line: int) -> tuple[str, str]:
    """A log line as tasks write them, with its level."""
    roll = rng.random()
    if roll < 0.02:
        kind = rng.randrange(3)
        if kind == 0:
            return "ERROR", (
                f"Task failed: Traceback (most recent call last):\n"
                f'  File "/srv/dags/etl.py", line {rng.randrange(20, 400)}, in execute\n'
                f"    rows = fetch(cursor)\nConnectionError: connection refused by "
                f"db.example.com:5432 (attempt {rng.randrange(1, 4)})"
            )
        if kind == 1:
            return (
                "ERROR",
                f"Deadlock detected on table orders_{rng.randrange(2020, 2025)}; retrying",
            )
        return "ERROR", f"HTTP 503 from https://api.example.com/v1/orders/{rng.randrange(10**6)}"
    if roll < 0.07:
        return "WARNING", (
            f"timeout after {rng.randrange(5, 60)}s waiting for lock on "
            f"customers_{rng.randrange(100)}; retrying in {rng.randrange(1, 30)}s"
        )
    if roll < 0.15:
        return "DEBUG", f"cursor.execute took {rng.random() * 3:.3f}s (batch {line})"
    kind = rng.randrange(6)
    if kind == 0:
        return "INFO", (
            f"Processed {rng.randrange(10**5)} rows from "
            f"s3://warehouse/raw/part-{rng.randrange(10**4):05d}.parquet in {rng.random() * 9:.2f}s"
        )
    if kind == 1:
        return "INFO", f"Connecting to db.example.com:5432 as etl_user (run {run})"
    if kind == 2:
        return "INFO", f"Loaded batch {line} of {LINES_PER_TASK} for order {run * 1000 + task}"
    if kind == 3:
        return "INFO", f"request id {uuid.UUID(int=rng.getrandbits(128))} ok"
    if kind == 4:
        return "INFO", f"Wrote /tmp/out/{rng.randrange(10**6)}.csv ({rng.randrange(10**4)} KiB)"
    return "INFO", f"step {line} of task_{task:02d} done; processed queue {rng.randrange(50)}"


def rows(lines: int, seed: int = 7) -> Iterator[list[dict[str, Any]]]:
    """The log lines in batches: runs of 50 tasks of 20 lines, a run every 10 minutes."""
    rng = random.Random(seed)
    batch: list[dict[str, Any]] = []
    per_run = TASKS_PER_RUN * LINES_PER_TASK
    for n in range(lines):
        run, rest = divmod(n, per_run)
        task, line = divmod(rest, LINES_PER_TASK)
        at = T0 + timedelta(minutes=10 * run, seconds=task * 2, milliseconds=line)
        level, message = _message(rng, run, task, line)
        batch.append(
            {
                "DagId": DAGS[run % len(DAGS)],
                "ExecTs": format_ts(T0 + timedelta(minutes=10 * run)),
                "TaskId": f"task_{task:02d}",
                "Retry": 0,
                "InsertTs": format_ts(at),
                "Level": level,
                "Message": message,
                "Attributes": "{}",
                "Seq": line,
            }
        )
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def fill(engine: Engine, lines: int) -> float:
    """Write the lines through the index; the seconds it took."""
    started = time.perf_counter()
    for batch in rows(lines):
        with engine.begin() as conn:
            conn.execute(tasklogs.insert(), batch)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE tasklogs")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started


def sizes(engine: Engine) -> dict[str, int]:
    """Bytes of what search adds (the index; on PostgreSQL also the stored vectors and the
    time index) and of ``tasklogs`` without it (its rows and other indexes)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":

            def one(sql: str) -> int:
                return int(conn.exec_driver_sql(sql).scalar() or 0)

            gin = one("SELECT pg_relation_size('ix_tasklogs_message_fts')")
            by_time = one("SELECT pg_relation_size('ix_tasklogs_insert_ts')")
            vectors = one('SELECT sum(pg_column_size("MessageWords")) FROM tasklogs')
            total = one("SELECT pg_total_relation_size('tasklogs')")
            return {
                "index": gin,
                "vectors": vectors,
                "time_index": by_time,
                "table": total - gin - by_time - vectors,
            }
        found = dict(
            conn.exec_driver_sql("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").all()
        )
    index = sum(v for k, v in found.items() if k.startswith("tasklogs_fts"))
    table = sum(v for k, v in found.items() if k == "tasklogs" or k.startswith(("ix_", "uq_")))
    return {"index": int(index), "vectors": 0, "time_index": 0, "table": int(table)}


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def measure(engine: Engine, lines: int, repeat: int) -> list[dict[str, Any]]:
    """p50/p99 of each query: the page alone, and with its hits' line numbers."""
    out = []
    with engine.connect() as conn:
        for name, query, filters in queries(lines):
            page_ms, full_ms, hits = [], [], 0
            for i in range(repeat + 2):
                started = time.perf_counter()
                page = search_logs(conn, query, filters, limit=50)
                middle = time.perf_counter()
                for hit in page.hits:
                    line_position(conn, hit)
                ended = time.perf_counter()
                if i >= 2:  # two warm-ups
                    page_ms.append((middle - started) * 1000)
                    full_ms.append((ended - started) * 1000)
                hits = len(page.hits)
            out.append(
                {
                    "query": name,
                    "q": query,
                    "p50_ms": round(statistics.median(page_ms), 2),
                    "p99_ms": round(percentile(page_ms, 99), 2),
                    "with_lines_p50_ms": round(statistics.median(full_ms), 2),
                    "with_lines_p99_ms": round(percentile(full_ms, 99), 2),
                    "hits": hits,
                }
            )
    return out


def run(target: str, lines: int, repeat: int) -> dict[str, Any]:
    """Build the logs DB at ``target``, fill it and measure the queries."""
    engine = open_logs_db(target)
    try:
        fill_s = fill(engine, lines)
        size = sizes(engine)
        results = measure(engine, lines, repeat)
    finally:
        engine.dispose()
    return {
        "db": "postgresql" if "://" in target else "sqlite",
        "lines": lines,
        "fill_s": round(fill_s, 1),
        "index_mib": round(size["index"] / 2**20, 1),
        "vectors_mib": round(size["vectors"] / 2**20, 1),
        "time_index_mib": round(size["time_index"] / 2**20, 1),
        "table_mib": round(size["table"] / 2**20, 1),
        "queries": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="log lines to write")
    parser.add_argument("--repeat", type=int, default=50, help="runs of each query")
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="one database only")
    parser.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server (an admin database: the benchmark creates and drops its own)",
    )
    args = parser.parse_args()
    reports = []
    if args.only != "postgres":
        with tempfile.TemporaryDirectory(prefix="ppacer-logsearch-") as tmp:
            reports.append(run(str(Path(tmp) / "logs.db"), args.lines, args.repeat))
            print(json.dumps(reports[-1]), flush=True)
    if args.only != "sqlite":
        name = f"ppacer_bench_logsearch_{uuid.uuid4().hex[:8]}"
        admin = create_engine(database_url(args.pg), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            target = args.pg.rsplit("/", 1)[0] + "/" + name
            reports.append(run(target, args.lines, args.repeat))
            print(json.dumps(reports[-1]), flush=True)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print(f"\nPython {platform.python_version()} on {sys.platform}; {args.repeat} runs per query\n")
    for report in reports:
        extra = (
            f" + stored vectors {report['vectors_mib']} MiB + time index "
            f"{report['time_index_mib']} MiB"
            if report["vectors_mib"]
            else ""
        )
        print(
            f"{report['db']}: {report['lines']:,} lines written in {report['fill_s']} s; "
            f"search index {report['index_mib']} MiB{extra}; the table and its other "
            f"indexes {report['table_mib']} MiB"
        )
        print("| query | p50 ms | p99 ms | with line numbers p50 / p99 ms | hits |")
        print("|---|---:|---:|---:|---:|")
        for r in report["queries"]:
            print(
                f"| {r['query']} (`{r['q']}`) | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
                f"| {r['with_lines_p50_ms']:.1f} / {r['with_lines_p99_ms']:.1f} | {r['hits']} |"
            )
        print()


if __name__ == "__main__":
    main()
