"""Schema migrations: a database of the ppacer before migrations upgrades with every row kept.

The old databases are built here from the DDL that ppacer wrote at commit
ca465ca (kept as fixtures), on SQLite and on PostgreSQL, and filled with runs,
attempts, errors, outputs, parameters, logs, restarts, pauses, events, backfills
and schedule decisions.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, inspect, text

import ppacer
from ppacer.db.engine import database_url, open_logs_db, open_scheduler_db
from ppacer.db.migrate import (
    BASELINE,
    LOGS_DB,
    SCHEDULER_DB,
    History,
    SchemaError,
    _migrate,
    _revisions,
    _serialised,
    read_state,
    schema_drift,
    upgrade,
)
from ppacer.local import LocalRunner
from tests.conftest import wait_for

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "schema_ca465ca"
TS = "2024-03-11T12:00:00.000000UTC+00:00"
RUNS = 30


def _build_legacy(engine: Engine, *files: str) -> None:
    """Run the DDL files as they are, through the driver (as ``sqlite3`` / ``psql`` would)."""
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


def _fill(scheduler: Engine, logs: Engine) -> None:
    """Rows in every table, as the old ppacer wrote them."""
    runs, tasks, errors, outputs, params, restarts, events, schedules = (
        [],
        [],
        [],
        [],
        [],
        [],
        [],
        [],
    )
    for i in range(1, RUNS + 1):
        exec_ts = f"2024-03-{1 + i // 24:02d}T{i % 24:02d}:00:00.000000UTC+00:00"
        status = "FAILED" if i % 7 == 0 else "SUCCESS"
        runs.append((i, "legacy", exec_ts, TS, status, TS, "0.1.0"))
        params.append((i, f'{{"day": {i}, "name": "r\\u00e9sum\\u00e9"}}'))
        schedules.append(("legacy", TS, "REGULAR", exec_ts, exec_ts))
        events.append((i, TS, "TRIGGER", None, "api", '{"params": {}}'))
        for task_id in ("extract", "load"):
            task_status = "FAILED" if status == "FAILED" and task_id == "load" else "SUCCESS"
            tasks.append(("legacy", exec_ts, task_id, 0, TS, task_status, TS, "0.1.0"))
            if task_status == "FAILED":
                errors.append(("legacy", exec_ts, task_id, 0, TS, "ValueError: boom"))
                restarts.append(("legacy", exec_ts, 1, TS))
            else:
                outputs.append(("legacy", exec_ts, task_id, 0, TS, f'{{"rows": {i}}}'))
    statements = {
        'INSERT INTO dagruns ("RunId","DagId","ExecTs","InsertTs","Status","StatusUpdateTs",'
        '"Version") VALUES (:a,:b,:c,:d,:e,:f,:g)': runs,
        "INSERT INTO dagruntasks VALUES (:a,:b,:c,:d,:e,:f,:g,:h)": tasks,
        "INSERT INTO dagruntaskerrors VALUES (:a,:b,:c,:d,:e,:f)": errors,
        "INSERT INTO dagruntaskoutputs VALUES (:a,:b,:c,:d,:e,:f)": outputs,
        "INSERT INTO dagrunparams VALUES (:a,:b)": params,
        "INSERT INTO dagrunrestarts VALUES (:a,:b,:c,:d)": restarts,
        "INSERT INTO dagrunevents VALUES (:a,:b,:c,:d,:e,:f)": events,
        "INSERT INTO schedules VALUES (:a,:b,:c,:d,:e)": schedules,
        "INSERT INTO dags VALUES (:a,:b,:c,:d,:e,:f,:g,:h,:i,:j)": [
            ("legacy", TS, "FixedSchedule: 1h", TS, TS, "0.1.0", "0.1.0", "m", "t", "{}")
        ],
        "INSERT INTO dagtasks VALUES (:a,:b,:c,:d,:e,:f,:g,:h,:i,:j,:k)": [
            ("legacy", "extract", 1, TS, 1, 1, "0.1.0", "Extract", "{}", "h1", "def execute..."),
            ("legacy", "load", 1, TS, 2, 1, "0.1.0", "Load", "{}", "h2", "def execute..."),
        ],
        "INSERT INTO dagpauses VALUES (:a,:b,:c,:d,:e)": [("legacy", 0, TS, "api", None)],
        'INSERT INTO backfills ("BackfillId","DagId","FromTs","ToTs","MaxActiveRuns","NextTs",'
        '"Status","InsertTs","UpdateTs","Actor") VALUES (:a,:b,:c,:d,:e,:f,:g,:h,:i,:j)': [
            (1, "legacy", TS, TS, 4, None, "SUCCESS", TS, TS, "cli")
        ],
        "INSERT INTO backfillruns VALUES (:a,:b)": [(1, 1), (1, 2)],
        "INSERT INTO schemaversion VALUES (:a,:b)": [(1, TS)],
    }
    keys = "abcdefghijk"
    with scheduler.begin() as conn:
        for sql, rows in statements.items():
            conn.execute(text(sql), [dict(zip(keys, row, strict=False)) for row in rows])
        if conn.dialect.name == "postgresql":  # the old serial columns go on from here
            conn.exec_driver_sql("""SELECT setval('"dagruns_RunId_seq"', 1000)""")
            conn.exec_driver_sql("""SELECT setval('"backfills_BackfillId_seq"', 10)""")
    logs_rows = [
        {"a": "legacy", "b": r[2], "c": "extract", "d": 0, "e": TS, "f": "INFO", "g": f"line {n}"}
        for n, r in enumerate(runs)
    ]
    with logs.begin() as conn:
        conn.execute(text("INSERT INTO tasklogs VALUES (:a,:b,:c,:d,:e,:f,:g,'{}')"), logs_rows)


def _columns(engine: Engine, tables: set[str]) -> dict[str, list[str]]:
    """The columns each table has now (before an upgrade: the old columns)."""
    found = inspect(engine)
    return {t: [c["name"] for c in found.get_columns(t)] for t in sorted(tables)}


def _snapshot(engine: Engine, columns: dict[str, list[str]]) -> dict[str, tuple[int, str]]:
    """Per table: the row count and a checksum of the rows' ``columns`` (sorted rows)."""
    out = {}
    with engine.connect() as conn:
        for table, names in columns.items():
            listed = ", ".join(f'"{n}"' for n in names)
            result = conn.execute(text(f'SELECT {listed} FROM "{table}"'))
            rows = sorted(repr(tuple(r)) for r in result)
            out[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    return out


@pytest.fixture(params=["sqlite", "postgres"])
def legacy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Scheduler and logs DB targets of a ppacer from before migrations, full of rows."""
    if request.param == "sqlite":
        db, logs = str(tmp_path / "scheduler.db"), str(tmp_path / "logs.db")
        files = (("sqlite_scheduler.sql",), ("sqlite_logs.sql",))
    else:
        request.applymarker(pytest.mark.postgres)
        db = logs = request.getfixturevalue("pg_url")
        files = (("postgres.sql",), ())
    engines = [create_engine(database_url(db)), create_engine(database_url(logs))]
    _build_legacy(engines[0], *files[0])
    if files[1]:
        _build_legacy(engines[1], *files[1])
    _fill(*engines)
    for engine in engines:
        engine.dispose()
    yield db, logs


def test_a_legacy_database_upgrades_with_every_row_kept(legacy: tuple[str, str]) -> None:
    db, logs = legacy
    sched_engine, logs_engine = create_engine(database_url(db)), create_engine(database_url(logs))
    assert read_state(sched_engine, SCHEDULER_DB).kind == "legacy"
    assert read_state(logs_engine, LOGS_DB).kind == "legacy"
    old_columns = _columns(sched_engine, set(SCHEDULER_DB.baseline_tables))
    old_log_columns = _columns(logs_engine, {"tasklogs"})
    before = _snapshot(sched_engine, old_columns)
    logs_before = _snapshot(logs_engine, old_log_columns)
    assert before["dagruns"][0] == RUNS and before["dagruntasks"][0] == 2 * RUNS
    assert before["dagruntaskerrors"][0] == RUNS // 7 and logs_before["tasklogs"][0] == RUNS

    first, after_state = upgrade(sched_engine, SCHEDULER_DB)
    upgrade(logs_engine, LOGS_DB)
    assert first.kind == "legacy" and after_state.is_current
    assert _snapshot(sched_engine, old_columns) == before
    assert _snapshot(logs_engine, old_log_columns) == logs_before
    assert schema_drift(sched_engine, SCHEDULER_DB) == []
    assert schema_drift(logs_engine, LOGS_DB) == []
    # Safe to repeat: nothing changes.
    again, _ = upgrade(sched_engine, SCHEDULER_DB)
    assert again.is_current
    assert _snapshot(sched_engine, old_columns) == before
    sched_engine.dispose()
    logs_engine.dispose()

    # The scheduler then runs a DAG on the upgraded database, beside the old runs.
    @ppacer.task
    def extract(ctx: ppacer.TaskContext) -> None:
        ctx.logger.info("after the upgrade")

    dags = ppacer.Registry([ppacer.Dag("legacy", root=ppacer.Node(extract)).done()])
    runner = LocalRunner(dags, db, logs, port=0, stop_timeout_s=5).start()
    try:
        run_id = runner.client.trigger_dag_run("legacy")["runId"]
        assert run_id > RUNS
        wait_for(lambda: runner.client.get_dag_run(run_id)["status"] == "SUCCESS", 30, "the run")
        assert runner.client.list_dag_runs(dag_id="legacy")["total"] == RUNS + 1
        old = runner.client.get_dag_run(7)
        assert old["status"] == "FAILED" and old["params"] == {"day": 7, "name": "résumé"}
        assert [t["error"] for t in old["tasks"] if t["taskId"] == "load"] == ["ValueError: boom"]
    finally:
        runner.stop()


def test_no_upgrade_refuses_an_old_schema_with_the_command_to_run(legacy, tmp_path) -> None:
    db, logs = legacy
    with pytest.raises(SchemaError) as refused:
        open_scheduler_db(db, upgrade=False)
    message = str(refused.value)
    assert "before migrations" in message and "ppacer db upgrade --db" in message
    assert "--no-upgrade" in message
    # Refused: nothing was changed (still no version table).
    engine = create_engine(database_url(db))
    assert read_state(engine, SCHEDULER_DB).kind == "legacy"
    engine.dispose()
    # Through the command line too.
    (tmp_path / "dags.py").write_text(
        "import ppacer\n"
        "@ppacer.task\ndef t(ctx): pass\n"
        "dags = ppacer.Registry([ppacer.Dag('legacy', root=ppacer.Node(t)).done()])\n"
    )
    command = [sys.executable, "-m", "ppacer", "scheduler", "dags.py", "--port", "0"]
    result = subprocess.run(
        [*command, "--no-upgrade", "--db", db, "--logs-db", logs],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "ppacer db upgrade --db" in result.stderr and "Traceback" not in result.stderr


def test_db_check_before_and_after_the_upgrade(legacy, tmp_path) -> None:
    db, logs = legacy

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "ppacer",
                "db",
                "check",
                "--json",
                "--db",
                db,
                "--logs-db",
                logs,
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    before = check()
    assert before.returncode == 1
    assert (
        "before migrations" in before.stdout and "would record it at 0001_baseline" in before.stdout
    )
    upgraded = subprocess.run(
        [sys.executable, "-m", "ppacer", "db", "upgrade", "--db", db, "--logs-db", logs],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    after = check()
    assert after.returncode == 0, after.stdout
    assert [(s["state"], s["revision"], s["problems"]) for s in json.loads(after.stdout)] == [
        ("versioned", SCHEDULER_DB.head, []),
        ("versioned", LOGS_DB.head, []),
    ]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_models_agree_with_the_latest_migration(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A database made by the migrations has exactly the models' tables (no autogenerate diff)."""
    if backend == "sqlite":
        targets = [str(tmp_path / "s.db"), str(tmp_path / "l.db")]
    else:
        url = request.getfixturevalue("pg_url")
        targets = [url, url]
    for history, target, opener in zip(
        (SCHEDULER_DB, LOGS_DB), targets, (open_scheduler_db, open_logs_db), strict=True
    ):
        engine = opener(target)
        try:
            assert read_state(engine, history).is_current
            assert schema_drift(engine, history) == []
        finally:
            engine.dispose()


@pytest.mark.parametrize("history", [SCHEDULER_DB, LOGS_DB], ids=lambda h: h.name)
def test_the_revision_constants_are_the_scripts(history: History) -> None:
    assert tuple(_revisions(history)) == history.revisions
    assert history.revisions[0] == BASELINE


def _describe(engine: Engine, history: History) -> dict[str, Any]:
    """Everything of a database a user or ppacer could tell apart, but the secret's value."""
    inspector = inspect(engine)
    tables: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        columns = [
            {key: str(value) for key, value in column.items() if key != "type"}
            | {"type": str(column["type"])}
            for column in inspector.get_columns(table)
        ]
        tables[table] = {
            "columns": columns,
            "primary key": inspector.get_pk_constraint(table),
            "indexes": sorted(inspector.get_indexes(table), key=lambda i: str(i["name"])),
            "unique": sorted(inspector.get_unique_constraints(table), key=lambda u: str(u["name"])),
            "foreign keys": inspector.get_foreign_keys(table),
        }
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            others = conn.exec_driver_sql(
                "SELECT type, name, tbl_name, sql FROM sqlite_master "
                "WHERE type IN ('trigger', 'view') OR sql LIKE 'CREATE VIRTUAL%' ORDER BY name"
            ).all()
        else:
            others = conn.exec_driver_sql(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                "ORDER BY indexname"
            ).all()
        rows: dict[str, Any] = {
            history.version_table: conn.exec_driver_sql(
                f"SELECT version_num FROM {history.version_table}"
            ).all()
        }
        if history is SCHEDULER_DB:
            rows["schemaversion"] = conn.exec_driver_sql(
                'SELECT "Version" FROM schemaversion'
            ).all()
            rows["schedulerleader"] = conn.exec_driver_sql(
                'SELECT "Id", "Holder", "Epoch", "LeaseUntil", "Url", "CodeHash", "UpdateTs", '
                'length("Secret") FROM schedulerleader'
            ).all()
    return {"tables": tables, "other objects": [tuple(r) for r in others], "rows": rows}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("history", [SCHEDULER_DB, LOGS_DB], ids=lambda h: h.name)
def test_a_new_database_is_what_the_migrations_make(
    backend: str, history: History, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A new database is made from the models, without Alembic: the same tables, columns,
    indexes, constraints, triggers and seeded rows as every migration run from empty."""
    if backend == "sqlite":
        urls = [database_url(str(tmp_path / "migrated.db")), database_url(str(tmp_path / "new.db"))]
    else:
        url = database_url(request.getfixturevalue("pg_url"))
        urls = [url, url]
    found = []
    for url, by_migrations in zip(urls, (True, False), strict=True):
        engine = create_engine(url)
        try:
            if by_migrations:
                with _serialised(engine, history) as conn:
                    _migrate(conn, history, legacy=False)
            else:
                before, after = upgrade(engine, history)
                assert (before.kind, after.is_current) == ("empty", True)
                assert before.pending == history.revisions
            found.append(_describe(engine, history))
            assert schema_drift(engine, history) == []
            if backend == "postgres" and by_migrations:  # empty it for the other way
                with engine.begin() as conn:
                    conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        finally:
            engine.dispose()
    migrated, new = found
    assert new["tables"] and new["rows"][history.version_table] == [(history.head,)]
    assert new == migrated


def test_a_new_database_does_not_load_alembic(tmp_path: Path) -> None:
    """A first start creates both databases without importing Alembic (about 12 MiB)."""
    code = (
        "import sys; from ppacer.db.engine import open_logs_db, open_scheduler_db; "
        f"open_scheduler_db({str(tmp_path / 's.db')!r}).dispose(); "
        f"open_logs_db({str(tmp_path / 'l.db')!r}).dispose(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    for name in ("s.db", "l.db"):
        engine = create_engine(database_url(str(tmp_path / name)))
        try:
            history = SCHEDULER_DB if name == "s.db" else LOGS_DB
            assert read_state(engine, history).is_current
        finally:
            engine.dispose()


def test_a_newer_or_unknown_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    open_scheduler_db(str(path)).dispose()
    engine = create_engine(database_url(str(path)))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099_future'")
    for attempt in (lambda: open_scheduler_db(str(path)), lambda: upgrade(engine, SCHEDULER_DB)):
        with pytest.raises(SchemaError, match=r"0099_future.*upgrade ppacer"):
            attempt()
    odd = create_engine(database_url(str(tmp_path / "odd.db")))
    with odd.begin() as conn:
        conn.exec_driver_sql('CREATE TABLE dags ("DagId" TEXT PRIMARY KEY)')
    with pytest.raises(SchemaError, match="not a ppacer database"):
        upgrade(odd, SCHEDULER_DB)
    assert inspect(odd).get_table_names() == ["dags"]
    engine.dispose()
    odd.dispose()


@pytest.mark.postgres
def test_two_upgrades_at_once_on_postgres_upgrade_it_once(pg_url: str, tmp_path: Path) -> None:
    """Both processes wait on the advisory lock the test holds; then one upgrades, one finds
    the database current; neither fails."""
    import zlib

    key = zlib.crc32(f"ppacer:{SCHEDULER_DB.version_table}".encode())
    holder = create_engine(database_url(pg_url))
    env = {**os.environ, "PPACER_DB": pg_url, "PPACER_LOGS_DB": pg_url}
    with holder.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "ppacer", "db", "upgrade", "--json"],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]

        def waiting() -> bool:
            sql = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            with holder.connect() as probe:
                return int(probe.execute(text(sql)).scalar() or 0) >= 2

        wait_for(waiting, 60, "both upgrades to wait for the lock")
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        conn.commit()
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    with holder.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    assert versions == [(SCHEDULER_DB.head,)]
    applied = [r for out, _ in results for r in json.loads(out) if r["applied"]]
    assert [r["db"] for r in applied] == ["scheduler", "logs"]  # each history applied once
    holder.dispose()
