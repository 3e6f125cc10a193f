"""Retention: finished runs past an age go, with everything about them, in batches.

On both databases: what is deleted (runs, attempts, starts, errors, outputs,
params, restarts, events, schedule rows, task logs) and what is kept (unfinished
runs whatever their age, recent runs, a DAG's latest schedule decision, runs of
a backfill still running); the log-search index forgets the deleted lines; the
work is split into bounded batches; SQLite gives the space back. Then the
leading scheduler's retention loop, on a real scheduler and executor: old runs
go while new ones run, and a run triggered while a long prune is in progress
completes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, text, update

import ppacer
import ppacer.db.retention as retention_db
from ppacer.db.engine import open_logs_db, open_scheduler_db
from ppacer.db.logsearch import search_logs
from ppacer.db.retention import give_space_back, prune, vacuum
from ppacer.db.schema import (
    backfillruns,
    backfills,
    dagrunevents,
    dagrunparams,
    dagrunrestarts,
    dagruns,
    dagruntaskerrors,
    dagruntaskoutputs,
    dagruntasks,
    dagruntaskstarts,
    schedules,
    tasklogs,
)
from ppacer.local import LocalRunner
from ppacer.scheduler.config import Config
from ppacer.testing import ManualClock
from ppacer.timeutils import format_ts
from tests.conftest import wait_for

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
CUTOFF = format_ts(NOW - timedelta(days=30))
# Tables holding rows of a run, keyed by (DagId, ExecTs) or by RunId.
BY_EXEC = (dagruntasks, dagruntaskstarts, dagruntaskerrors, dagruntaskoutputs, dagrunrestarts)
BY_RUN_ID = (dagrunparams, dagrunevents)


# ---------------------------------------------------------------------- seeding


@dataclass(frozen=True)
class Seed:
    """A run to insert: its DAG, logical time, status and when that status was set."""

    dag_id: str
    exec_ts: datetime
    status: str
    done: datetime
    word: str = "keepme"
    tasks: int = 2
    lines: int = 3
    message_size: int = 0


def seed_runs(engine: Engine, logs_engine: Engine, seeds: Sequence[Seed]) -> list[int]:
    """Insert ``seeds`` with an attempt per task, a start, an output, params, an event,
    a restart, an error (FAILED runs), the REGULAR schedule row and ``lines`` log
    lines per task naming ``word``. Returns the RunIds, in order."""
    with engine.begin() as conn:
        first = conn.execute(select(func.coalesce(func.max(dagruns.c.RunId), 0))).scalar_one()
        conn.execute(
            insert(dagruns),
            [
                {
                    "RunId": first + i + 1,
                    "DagId": s.dag_id,
                    "ExecTs": format_ts(s.exec_ts),
                    "InsertTs": format_ts(s.exec_ts),
                    "Status": s.status,
                    "StatusUpdateTs": format_ts(s.done),
                    "Version": "test",
                }
                for i, s in enumerate(seeds)
            ],
        )
        ids = [first + i + 1 for i in range(len(seeds))]
        rows: dict[Any, list[dict[str, Any]]] = {t: [] for t in (*BY_EXEC, *BY_RUN_ID, schedules)}
        for run_id, s in zip(ids, seeds, strict=True):
            key = {"DagId": s.dag_id, "ExecTs": format_ts(s.exec_ts)}
            at = format_ts(s.exec_ts)
            task_status = {"SUCCESS": "SUCCESS", "FAILED": "FAILED"}.get(s.status, "RUNNING")
            for t in range(s.tasks):
                attempt = {**key, "TaskId": f"t{t}", "Retry": 0}
                rows[dagruntasks].append(
                    {
                        **attempt,
                        "InsertTs": at,
                        "Status": task_status,
                        "StatusUpdateTs": format_ts(s.done),
                        "Version": "test",
                    }
                )
                rows[dagruntaskstarts].append({**attempt, "StartTs": at, "Executor": "x"})
                rows[dagruntaskoutputs].append({**attempt, "InsertTs": at, "Value": "1"})
                if s.status == "FAILED":
                    rows[dagruntaskerrors].append({**attempt, "InsertTs": at, "Error": "E: x"})
            rows[dagrunrestarts].append({**key, "Restart": 1, "InsertTs": at})
            rows[dagrunparams].append({"RunId": run_id, "Params": "{}"})
            rows[dagrunevents].append(
                {
                    "RunId": run_id,
                    "InsertTs": at,
                    "Action": "TRIGGER",
                    "TaskId": None,
                    "Actor": "test",
                    "Detail": "{}",
                }
            )
            rows[schedules].append(
                {
                    "DagId": s.dag_id,
                    "InsertTs": at,
                    "Event": "REGULAR",
                    "ScheduleTs": at,
                    "NextScheduleTs": at,
                }
            )
        for table, values in rows.items():
            if values:
                conn.execute(insert(table), values)
    lines = [
        {
            "DagId": s.dag_id,
            "ExecTs": format_ts(s.exec_ts),
            "TaskId": f"t{t}",
            "Retry": 0,
            "InsertTs": format_ts(s.exec_ts + timedelta(seconds=n)),
            "Level": "INFO",
            "Message": f"{s.word} line {n} of {s.dag_id} " + "x" * s.message_size,
            "Attributes": "{}",
            "Seq": n,
        }
        for s in seeds
        for t in range(s.tasks)
        for n in range(s.lines)
    ]
    with logs_engine.begin() as conn:
        for start in range(0, len(lines), 5000):
            conn.execute(insert(tasklogs), lines[start : start + 5000])
    return ids


def old(dag_id: str, days: float, status: str = "SUCCESS", **kw: Any) -> Seed:
    """A run of ``dag_id`` that got ``status`` ``days`` before :data:`NOW`."""
    at = NOW - timedelta(days=days)
    return Seed(dag_id, at - timedelta(minutes=5), status, at, **kw)


def count(engine: Engine, table: Any, **where: Any) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def run_ids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(select(dagruns.c.RunId).order_by(dagruns.c.RunId)).scalars())


def found_in_logs(logs_engine: Engine, word: str) -> int:
    """Lines log search finds for ``word`` (and, on SQLite, what the FTS5 index alone holds)."""
    with logs_engine.connect() as conn:
        hits = len(search_logs(conn, word, limit=10_000).hits)
        if logs_engine.dialect.name == "sqlite":
            # The index on its own (no join to the rows): stale entries would show here.
            indexed = conn.execute(
                text("SELECT count(*) FROM tasklogs_fts WHERE tasklogs_fts MATCH :w"), {"w": word}
            ).scalar_one()
            assert indexed == hits
    return hits


# ---------------------------------------------------------------------- fixtures


@dataclass
class Dbs:
    kind: str
    engine: Engine
    logs_engine: Engine
    db: str
    logs_db: str


@pytest.fixture(params=["sqlite", "postgres"])
def dbs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Dbs]:
    """Empty scheduler and logs databases at their head revisions (PostgreSQL: one database)."""
    if request.param == "sqlite":
        db, logs_db = str(tmp_path / "scheduler.db"), str(tmp_path / "logs.db")
    else:
        db = logs_db = request.getfixturevalue("pg_url")
    engine = open_scheduler_db(db)
    logs_engine = open_logs_db(logs_db)
    try:
        yield Dbs(request.param, engine, logs_engine, db, logs_db)
    finally:
        engine.dispose()
        logs_engine.dispose()


def mixed(dag: str = "etl") -> list[Seed]:
    """Old SUCCESS and FAILED runs, old unfinished ones, recent finished ones."""
    return [
        old(dag, 90, word="ancient"),
        old(dag, 45, "FAILED", word="ancient"),
        old(dag, 31, word="ancient"),
        old(dag, 60, "RUNNING"),
        old(dag, 40, "SCHEDULED"),
        old(dag, 29),
        old(dag, 1, "FAILED"),
        old(dag, 0.01),
    ]


# ---------------------------------------------------------------------- the deletion


def test_old_finished_runs_go_with_everything_about_them(dbs: Dbs) -> None:
    kept = seed_runs(dbs.engine, dbs.logs_engine, mixed())[3:]

    result = prune(dbs.engine, dbs.logs_engine, CUTOFF)

    assert (result.runs, result.attempts, result.log_lines) == (3, 6, 18)
    assert result.skipped == 0 and not result.stopped
    assert run_ids(dbs.engine) == kept
    for table in BY_EXEC:
        with dbs.engine.connect() as conn:
            left = set(conn.execute(select(table.c.ExecTs)).scalars())
        assert not left & {format_ts(s.exec_ts) for s in mixed()[:3]}, table.name
    for table in BY_RUN_ID:
        with dbs.engine.connect() as conn:
            assert sorted(set(conn.execute(select(table.c.RunId)).scalars())) == kept
    assert count(dbs.engine, dagruntasks) == 2 * len(kept)
    assert count(dbs.engine, dagruntaskerrors) == 2  # the recent FAILED run's
    assert count(dbs.logs_engine, tasklogs) == 3 * 2 * len(kept)


def test_unfinished_runs_are_never_deleted_whatever_their_age(dbs: Dbs) -> None:
    seed_runs(dbs.engine, dbs.logs_engine, [old("u", 400, "RUNNING"), old("u", 300, "SCHEDULED")])

    result = prune(dbs.engine, dbs.logs_engine, format_ts(NOW))

    assert result.runs == 0
    assert len(run_ids(dbs.engine)) == 2
    assert count(dbs.logs_engine, tasklogs) == 12


def test_log_search_forgets_the_deleted_lines(dbs: Dbs) -> None:
    seed_runs(dbs.engine, dbs.logs_engine, mixed())
    assert found_in_logs(dbs.logs_engine, "ancient") == 18
    assert found_in_logs(dbs.logs_engine, "keepme") == 30

    prune(dbs.engine, dbs.logs_engine, CUTOFF)

    assert found_in_logs(dbs.logs_engine, "ancient") == 0
    assert found_in_logs(dbs.logs_engine, "keepme") == 30
    if dbs.kind == "sqlite":
        with dbs.logs_engine.begin() as conn:
            # Raises when the FTS5 index and the rows it indexes disagree.
            conn.execute(text("INSERT INTO tasklogs_fts(tasklogs_fts) VALUES ('integrity-check')"))


def test_work_is_split_into_bounded_batches(dbs: Dbs) -> None:
    seed_runs(dbs.engine, dbs.logs_engine, [old(f"d{i % 3}", 40 + i) for i in range(10)])
    seed_runs(dbs.engine, dbs.logs_engine, [old("d0", 1)])
    transactions: list[int] = []
    real = retention_db._delete_logs

    def counting(logs_engine: Engine, batch: Sequence[Any], log_batch: int) -> int:
        transactions.append(len(batch))
        return real(logs_engine, batch, log_batch)

    retention_db._delete_logs = counting  # type: ignore[assignment]
    try:
        result = prune(dbs.engine, dbs.logs_engine, CUTOFF, batch=3, log_batch=4)
    finally:
        retention_db._delete_logs = real  # type: ignore[assignment]

    assert result.batches == 4 and transactions == [3, 3, 3, 1]
    assert (result.runs, result.log_lines) == (10, 60)
    assert count(dbs.engine, dagruns) == 1


def test_a_batch_of_a_thousand_runs_of_as_many_dags_is_one_statement(dbs: Dbs) -> None:
    """Was "Expression tree is too large (maximum depth 1000)" on SQLite."""
    seed_runs(
        dbs.engine, dbs.logs_engine, [old(f"x{i}", 40 + i / 100, lines=1) for i in range(1200)]
    )

    result = prune(dbs.engine, dbs.logs_engine, CUTOFF, batch=1000)

    assert (result.runs, result.batches, result.log_lines) == (1200, 2, 2400)
    assert count(dbs.engine, dagruntasks) == 0 and count(dbs.logs_engine, tasklogs) == 0
    # Each DAG's latest schedule decision stays (each DAG here has one run).
    assert count(dbs.engine, schedules) == 1200


def test_dry_run_counts_and_deletes_nothing(dbs: Dbs) -> None:
    seed_runs(dbs.engine, dbs.logs_engine, mixed())

    result = prune(dbs.engine, dbs.logs_engine, CUTOFF, dry_run=True)

    assert (result.runs, result.batches) == (3, 0)
    assert count(dbs.engine, dagruns) == 8
    assert count(dbs.logs_engine, tasklogs) == 48


def test_a_dags_latest_schedule_decision_is_kept(dbs: Dbs) -> None:
    """The DAG-run watcher resumes from it: deleting it would schedule the past again."""
    seed_runs(dbs.engine, dbs.logs_engine, [old("only_old", 50), old("only_old", 40)])

    prune(dbs.engine, dbs.logs_engine, CUTOFF)

    assert count(dbs.engine, dagruns) == 0
    with dbs.engine.connect() as conn:
        left = list(conn.execute(select(schedules.c.ScheduleTs)).scalars())
    assert left == [format_ts(old("only_old", 40).exec_ts)]


def test_runs_of_a_backfill_still_running_are_kept(dbs: Dbs) -> None:
    ids = seed_runs(dbs.engine, dbs.logs_engine, [old("bf", 50), old("bf", 49)])
    with dbs.engine.begin() as conn:
        for status, run_id in (("RUNNING", ids[0]), ("SUCCESS", ids[1])):
            backfill_id = conn.execute(
                insert(backfills)
                .values(
                    DagId="bf",
                    FromTs=CUTOFF,
                    ToTs=CUTOFF,
                    MaxActiveRuns=1,
                    NextTs=None,
                    Status=status,
                    InsertTs=CUTOFF,
                    UpdateTs=CUTOFF,
                    Actor="test",
                )
                .returning(backfills.c.BackfillId)
            ).scalar_one()
            conn.execute(insert(backfillruns).values(BackfillId=backfill_id, RunId=run_id))

    result = prune(dbs.engine, dbs.logs_engine, CUTOFF)

    assert result.runs == 1
    assert run_ids(dbs.engine) == [ids[0]]
    assert count(dbs.engine, backfillruns) == 1


def test_a_run_restarted_after_it_was_found_is_kept(dbs: Dbs) -> None:
    """The delete checks again: a run that became unfinished meanwhile stays."""
    ids = seed_runs(dbs.engine, dbs.logs_engine, [old("r", 50), old("r", 49)])
    real = retention_db._delete_runs

    def restart_first(engine: Engine, batch: Sequence[Any], cutoff: str) -> Any:
        with engine.begin() as conn:
            conn.execute(update(dagruns).where(dagruns.c.RunId == ids[0]).values(Status="RUNNING"))
        return real(engine, batch, cutoff)

    retention_db._delete_runs = restart_first  # type: ignore[assignment]
    try:
        result = prune(dbs.engine, None, CUTOFF)
    finally:
        retention_db._delete_runs = real  # type: ignore[assignment]

    assert (result.runs, result.skipped) == (1, 1)
    assert run_ids(dbs.engine) == [ids[0]]
    assert count(dbs.engine, dagruntasks, ExecTs=format_ts(old("r", 50).exec_ts)) == 2


# ---------------------------------------------------------------------- space


def file_bytes(path: str) -> int:
    """A SQLite database's size on disk: the file and its WAL."""
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


def auto_vacuum(engine: Engine) -> int:
    with engine.connect() as conn:
        # A read first: a pooled connection reports the mode it last read from the file.
        conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar_one()
        return int(conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one())


def make_mode_none(*engines: Engine) -> None:
    """Rewrite SQLite files in auto_vacuum NONE mode, as files made before retention are."""
    for engine in engines:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("PRAGMA auto_vacuum = NONE")
            conn.exec_driver_sql("VACUUM")
        assert auto_vacuum(engine) == 0


def checkpoint(*engines: Engine) -> None:
    for engine in engines:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


BIG = [old(f"big{i % 5}", 40 + i / 10, lines=20, message_size=400) for i in range(300)]


def test_sqlite_files_shrink_when_in_incremental_vacuum_mode(tmp_path: Path) -> None:
    db, logs_db = str(tmp_path / "scheduler.db"), str(tmp_path / "logs.db")
    engine, logs_engine = open_scheduler_db(db), open_logs_db(logs_db)
    try:
        for e in (engine, logs_engine):
            vacuum(e)  # once: the file now gives freed pages back by itself
            assert auto_vacuum(e) == 2
        seed_runs(engine, logs_engine, [*BIG, old("new", 1, lines=20, message_size=400)])
        checkpoint(engine, logs_engine)
        before = file_bytes(db), file_bytes(logs_db)

        result = prune(engine, logs_engine, CUTOFF, batch=50)
        spaces = [give_space_back(e) for e in (engine, logs_engine)]

        assert result.runs == 300 and count(engine, dagruns) == 1
        after = file_bytes(db), file_bytes(logs_db)
        assert all(s.freed_bytes > 0 for s in spaces), spaces
        assert after[0] < before[0] and after[1] < before[1] / 4, (before, after)
        assert found_in_logs(logs_engine, "keepme") == 40
    finally:
        engine.dispose()
        logs_engine.dispose()


def test_sqlite_file_in_default_mode_keeps_its_pages_until_vacuum(tmp_path: Path) -> None:
    """A file made with auto_vacuum NONE reuses its free pages; ``vacuum`` rewrites it
    once in INCREMENTAL mode, after which it gives space back by itself."""
    logs_db = str(tmp_path / "logs.db")
    engine, logs_engine = open_scheduler_db(str(tmp_path / "s.db")), open_logs_db(logs_db)
    try:
        make_mode_none(logs_engine)
        seed_runs(engine, logs_engine, BIG)
        prune(engine, logs_engine, CUTOFF)
        checkpoint(logs_engine)
        full = file_bytes(logs_db)

        kept = give_space_back(logs_engine)
        assert kept.freed_bytes == 0 and kept.kept_bytes > full / 2
        assert "prune --vacuum" in kept.note
        assert file_bytes(logs_db) == full

        rewritten = vacuum(logs_engine)
        assert rewritten.freed_bytes > full / 2
        assert file_bytes(logs_db) < full / 4 and auto_vacuum(logs_engine) == 2
    finally:
        engine.dispose()
        logs_engine.dispose()


def test_postgres_vacuum_runs_on_the_tables(pg_url: str) -> None:
    engine = open_scheduler_db(pg_url)
    logs_engine = open_logs_db(pg_url)
    try:
        seed_runs(engine, logs_engine, BIG[:50])
        prune(engine, logs_engine, CUTOFF)
        assert give_space_back(engine).freed_bytes == 0
        assert vacuum(engine).note == "VACUUM done"
        with engine.connect() as conn:
            vacuumed = conn.execute(
                text("SELECT count(*) FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL")
            ).scalar_one()
        assert vacuumed >= 10
    finally:
        engine.dispose()
        logs_engine.dispose()


# ---------------------------------------------------------------------- the scheduler's loop


class Chatty(ppacer.BaseTask):
    """Logs a line with a word to search for."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        ctx.logger.info("chatter from %s", ctx.task_id)


def chatty_registry() -> ppacer.Registry:
    root = ppacer.Node(Chatty("a"))
    root.next(Chatty("b"))
    return ppacer.Registry([ppacer.Dag("chatty").add_root(root).done()])


def start(dbs: Dbs, config: Config, **kw: Any) -> LocalRunner:
    return LocalRunner(
        chatty_registry(), dbs.db, dbs.logs_db, port=0, config=config, stop_timeout_s=10, **kw
    ).start()


def finished(engine: Engine, run_id: int) -> bool:
    with engine.connect() as conn:
        status = conn.execute(select(dagruns.c.Status).where(dagruns.c.RunId == run_id)).scalar()
    return status in ("SUCCESS", "FAILED")


def test_leader_deletes_runs_past_retention_days_while_scheduling_goes_on(dbs: Dbs) -> None:
    clock = ManualClock(NOW)
    config = Config(retention_days=1, retention_interval_s=0.05, retention_batch=1)
    runner = start(dbs, config, clock=clock)
    try:
        first = []
        for _ in range(3):
            first.append(runner.client.trigger_dag_run("chatty")["runId"])
            clock.advance(1)  # one run per logical time
        for run_id in first:
            wait_for(lambda r=run_id: finished(dbs.engine, r), what=f"run {run_id} finished")
        assert found_in_logs(dbs.logs_engine, "chatter") == 6
        assert "ppacer-retention" in runner.scheduler.loop_health()

        clock.advance(timedelta(days=2))  # the three runs are two days old now
        wait_for(lambda: count(dbs.engine, dagruns) == 0, what="old runs deleted")
        later = runner.client.trigger_dag_run("chatty")["runId"]
        wait_for(lambda: finished(dbs.engine, later), what="the new run finished")
    finally:
        runner.stop()

    assert run_ids(dbs.engine) == [later]
    assert count(dbs.engine, dagruntasks) == 2
    assert found_in_logs(dbs.logs_engine, "chatter") == 2


def test_a_run_triggered_during_a_long_prune_completes(
    dbs: Dbs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass over many runs holds the database one batch at a time: a run triggered
    while the pass is half done is scheduled, executed and finished before it ends."""
    many = [old(f"h{i % 7}", 10 + i / 1000, lines=2, message_size=300) for i in range(2000)]
    sqlite = dbs.kind == "sqlite"
    if sqlite:
        vacuum(dbs.engine)  # once: incremental mode, so the loop gives the space back
        vacuum(dbs.logs_engine)
    seed_runs(dbs.engine, dbs.logs_engine, many)
    if sqlite:
        checkpoint(dbs.engine, dbs.logs_engine)
        before = file_bytes(dbs.logs_db)
    halfway, run_done = threading.Event(), threading.Event()
    real = retention_db._delete_runs
    deleted: list[int] = []

    def pausing(engine: Engine, batch: Sequence[Any], cutoff: str) -> Any:
        out = real(engine, batch, cutoff)
        deleted.append(len(out[0]))
        if sum(deleted) >= len(many) // 2 and not halfway.is_set():
            halfway.set()
            # Hold the pass here (between two batches) until the test's run finished.
            assert run_done.wait(60), "the run triggered mid-prune did not finish"
        return out

    monkeypatch.setattr(retention_db, "_delete_runs", pausing)
    runner = start(dbs, Config(retention_days=1, retention_interval_s=0.05, retention_batch=50))
    try:
        wait_for(halfway.is_set, 60, "the prune half done")
        left_then = count(dbs.engine, dagruns)
        run_id = runner.client.trigger_dag_run("chatty")["runId"]
        wait_for(lambda: finished(dbs.engine, run_id), 30, "the run triggered mid-prune")
        run_done.set()
        wait_for(lambda: run_ids(dbs.engine) == [run_id], 60, "the prune finished")
        if sqlite:
            wait_for(lambda: file_bytes(dbs.logs_db) < before / 3, 60, "logs.db shrunk")
    finally:
        run_done.set()
        runner.stop()

    assert 0 < left_then < len(many)
    assert found_in_logs(dbs.logs_engine, "chatter") == 2
    assert found_in_logs(dbs.logs_engine, "keepme") == 0


def test_retention_is_off_by_default(dbs: Dbs) -> None:
    runner = start(dbs, Config())
    try:
        assert "ppacer-retention" not in runner.scheduler.loop_health()
    finally:
        runner.stop()
