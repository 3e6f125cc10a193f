"""How long `ppacer db upgrade` takes on a big database of the ppacer before migrations.

    python benchmarks/upgrade.py                     # 100,000 runs on SQLite and PostgreSQL
    python benchmarks/upgrade.py --runs 10000 --backends sqlite

Builds the schema of commit ca465ca (the DDL kept in tests/fixtures/schema_ca465ca),
fills it with ``--runs`` finished runs of 5 tasks each, their parameters, one error
per tenth run, and 2 log lines per task, then times the upgrade to the latest revision
(stamp + every migration), in one process, on a fresh SQLite file or a fresh
PostgreSQL database (dropped afterwards). Prints one JSON line per backend.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from ppacer.db.engine import database_url
from ppacer.db.migrate import LOGS_DB, SCHEDULER_DB, upgrade

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "schema_ca465ca"
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TS = "2024-03-11T12:00:00.000000UTC+00:00"
TASKS = ("a", "b", "c", "d", "e")


def _ddl(engine: Engine, *files: str) -> None:
    raw = engine.raw_connection()
    try:
        for name in files:
            sql = (FIXTURES / name).read_text()
            if engine.dialect.name == "sqlite":
                raw.driver_connection.executescript(sql)  # type: ignore[union-attr]
            else:
                raw.cursor().execute(sql)
        raw.commit()
    finally:
        raw.close()


def _fill(scheduler: Engine, logs: Engine, runs: int) -> None:
    batch = 5_000
    for start in range(1, runs + 1, batch):
        ids = range(start, min(runs, start + batch - 1) + 1)
        exec_ts = {i: f"2020-01-01T00:00:00.{i:06d}UTC+00:00" for i in ids}
        with scheduler.begin() as conn:
            conn.execute(
                text(
                    'INSERT INTO dagruns ("RunId","DagId","ExecTs","InsertTs","Status",'
                    "\"StatusUpdateTs\",\"Version\") VALUES (:i,'big',:e,:t,'SUCCESS',:t,'0.1.0')"
                ),
                [{"i": i, "e": exec_ts[i], "t": TS} for i in ids],
            )
            conn.execute(
                text("INSERT INTO dagrunparams VALUES (:i, :p)"),
                [{"i": i, "p": f'{{"n": {i}}}'} for i in ids],
            )
            conn.execute(
                text(
                    "INSERT INTO dagruntasks VALUES ('big', :e, :task, 0, :t, 'SUCCESS', :t, "
                    "'0.1.0')"
                ),
                [{"e": exec_ts[i], "task": task, "t": TS} for i in ids for task in TASKS],
            )
            conn.execute(
                text("INSERT INTO dagruntaskerrors VALUES ('big', :e, 'a', 0, :t, 'boom')"),
                [{"e": exec_ts[i], "t": TS} for i in ids if i % 10 == 0],
            )
        with logs.begin() as conn:
            conn.execute(
                text("INSERT INTO tasklogs VALUES ('big', :e, :task, 0, :t, 'INFO', :m, '{}')"),
                [
                    {"e": exec_ts[i], "task": task, "t": TS, "m": f"line {n} of {task}"}
                    for i in ids
                    for task in TASKS
                    for n in (1, 2)
                ],
            )


def measure(backend: str, runs: int) -> dict[str, object]:
    """Build, fill and upgrade one database; return the figures."""
    admin = None
    with tempfile.TemporaryDirectory() as tmp:
        if backend == "sqlite":
            db, logs = f"{tmp}/scheduler.db", f"{tmp}/logs.db"
            files: tuple[tuple[str, ...], tuple[str, ...]] = (
                ("sqlite_scheduler.sql",),
                ("sqlite_logs.sql",),
            )
        else:
            name = f"ppacer_bench_{uuid.uuid4().hex[:10]}"
            admin = create_engine(database_url(ADMIN), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            db = logs = f"postgresql://postgres@127.0.0.1:5432/{name}"
            files = (("postgres.sql",), ())
        sched_engine, logs_engine = (
            create_engine(database_url(db)),
            create_engine(database_url(logs)),
        )
        try:
            _ddl(sched_engine, *files[0])
            if files[1]:
                _ddl(logs_engine, *files[1])
            started = time.perf_counter()
            _fill(sched_engine, logs_engine, runs)
            fill_s = time.perf_counter() - started
            started = time.perf_counter()
            _, after = upgrade(sched_engine, SCHEDULER_DB)
            _, logs_after = upgrade(logs_engine, LOGS_DB)
            upgrade_s = time.perf_counter() - started
        finally:
            sched_engine.dispose()
            logs_engine.dispose()
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    return {
        "backend": backend,
        "runs": runs,
        "attempts": runs * len(TASKS),
        "log_lines": runs * len(TASKS) * 2,
        "fill_s": round(fill_s, 2),
        "upgrade_s": round(upgrade_s, 3),
        "scheduler_revision": after.revision,
        "logs_revision": logs_after.revision,
    }


def main() -> None:
    """Run the measurement for each backend asked for."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        print(json.dumps(measure(backend, args.runs)), flush=True)


if __name__ == "__main__":
    main()
