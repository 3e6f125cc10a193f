"""Retention: finished DAG runs older than a cutoff, deleted with everything about them.

A run qualifies when it is finished (SUCCESS or FAILED), its status last changed
before the cutoff (``StatusUpdateTs``, stored text: text order is time order),
and it belongs to no backfill still running. Unfinished runs are never deleted.
With a run go its task attempts (``dagruntasks``), their starts, errors and
outputs, its parameters, restarts, events and backfill membership, the
``schedules`` rows that created it (but a DAG's latest schedule decision, from
which the DAG-run watcher resumes) and its task logs.

Work is done in bounded batches, each its own short transaction, so a
scheduler running beside it waits for the database at most one batch at a time:

1. runs are found by a scan of ``dagruns`` in ``RunId`` order (the primary key),
   a chunk at a time, up to the first run created after the cutoff;
2. per batch of at most ``batch`` runs, their task logs are deleted first, at
   most ``log_batch`` lines per transaction (the logs DB may be another file; a
   crash in between leaves a run without logs, deleted at the next pass, never
   logs without a run);
3. then the runs and their rows, in one transaction whose ``DELETE ... RETURNING``
   checks again that each run still qualifies (a run restarted meanwhile is kept).

The logs' full-text index (logs DB revision ``0003_log_search``) follows the
rows: on SQLite its ``tasklogs_fts_delete`` trigger removes each deleted line
from the FTS5 index; on PostgreSQL the GIN index is over a column of the row.

Disk space: SQLite files whose ``auto_vacuum`` is INCREMENTAL give the freed
pages back to the file system (``PRAGMA incremental_vacuum``, a bounded number
of pages per transaction, then a WAL checkpoint). A file created with
``auto_vacuum`` NONE (SQLite's default) keeps its free pages for reuse; one
:func:`vacuum` (``ppacer prune --vacuum``) rewrites it in INCREMENTAL mode.
PostgreSQL reuses the space (autovacuum); :func:`vacuum` runs a plain ``VACUUM``
of the tables, which gives back only their empty trailing pages.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    delete,
    func,
    literal_column,
    select,
    text,
    tuple_,
)

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
from ppacer.gotime import timestamp_forms

__all__ = [
    "FINISHED",
    "PruneResult",
    "SpaceReport",
    "find_runs",
    "give_space_back",
    "prune",
    "vacuum",
]

#: Run statuses retention may delete.
FINISHED = ("SUCCESS", "FAILED")
# Schedule decisions that created a run (SKIPPED rows name no run: kept).
_RUN_EVENTS = ("REGULAR", "CAUGHT_UP", "MANUALLY_TRIGGERED", "OUT_OF_BAND")
_POINT_EVENTS = ("REGULAR", "CAUGHT_UP", "SKIPPED")
# Runs read per query of the scan.
_SCAN_CHUNK = 1000
# Pages given back per incremental-vacuum transaction (4 MiB of 4 KiB pages).
_VACUUM_PAGES = 1024
# Longest the final WAL checkpoint waits for readers, in milliseconds.
_TRUNCATE_WAIT_MS = 200


@dataclass(frozen=True, slots=True)
class RunRef:
    """A run to delete."""

    run_id: int
    dag_id: str
    exec_ts: str


@dataclass(slots=True)
class SpaceReport:
    """What one database file gave back, or why it did not."""

    database: str
    # Bytes given back to the file system (SQLite incremental vacuum).
    freed_bytes: int = 0
    # Free pages kept in the file for reuse (auto_vacuum NONE), in bytes.
    kept_bytes: int = 0
    note: str = ""


@dataclass(slots=True)
class PruneResult:
    """What a pass deleted (or, dry, would delete)."""

    cutoff: str
    runs: int = 0
    attempts: int = 0
    log_lines: int = 0
    batches: int = 0
    # Runs that qualified when found but not when deleted (restarted meanwhile).
    skipped: int = 0
    stopped: bool = False
    space: list[SpaceReport] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff,
            "runs": self.runs,
            "attempts": self.attempts,
            "logLines": self.log_lines,
            "batches": self.batches,
            "skipped": self.skipped,
            "stopped": self.stopped,
            "space": [
                {
                    "database": s.database,
                    "freedBytes": s.freed_bytes,
                    "keptBytes": s.kept_bytes,
                    "note": s.note,
                }
                for s in self.space
            ],
        }


def _running_backfill_runs(conn: Connection) -> set[int]:
    rows = conn.execute(
        select(backfillruns.c.RunId)
        .join(backfills, backfills.c.BackfillId == backfillruns.c.BackfillId)
        .where(backfills.c.Status == "RUNNING")
    )
    return {int(r[0]) for r in rows}


def find_runs(engine: Engine, cutoff: str) -> Iterator[list[RunRef]]:
    """Chunks of the runs that qualify (see the module's docstring), in RunId order."""
    with engine.connect() as conn:
        keep = _running_backfill_runs(conn)
    after = 0
    while True:
        with engine.connect() as conn:
            chunk = conn.execute(
                select(
                    dagruns.c.RunId,
                    dagruns.c.DagId,
                    dagruns.c.ExecTs,
                    dagruns.c.Status,
                    dagruns.c.StatusUpdateTs,
                    dagruns.c.InsertTs,
                )
                .where(dagruns.c.RunId > after)
                .order_by(dagruns.c.RunId)
                .limit(_SCAN_CHUNK)
            ).all()
        if not chunk:
            return
        found = [
            RunRef(int(r.RunId), r.DagId, r.ExecTs)
            for r in chunk
            if r.Status in FINISHED and r.StatusUpdateTs < cutoff and int(r.RunId) not in keep
        ]
        if found:
            yield found
        after = int(chunk[-1].RunId)
        # A run created after the cutoff cannot have finished before it; RunIds grow
        # with creation time, so the rest are newer still.
        if chunk[-1].InsertTs >= cutoff:
            return


def _batches(runs: Sequence[RunRef], size: int) -> Iterator[Sequence[RunRef]]:
    for start in range(0, len(runs), size):
        yield runs[start : start + size]


def _by_run(table: Any, batch: Sequence[RunRef], *, forms: bool = False) -> Any:
    """``table``'s rows of the runs of ``batch``, by (DagId, ExecTs)."""
    pairs = [
        (run.dag_id, exec_ts)
        for run in batch
        for exec_ts in (timestamp_forms(run.exec_ts) if forms else (run.exec_ts,))
    ]
    return _pairs_in(table.c.DagId, table.c.ExecTs, pairs)


def _pairs_in(first: Any, second: Any, pairs: Sequence[tuple[str, str]]) -> Any:
    r"""Rows whose (``first``, ``second``) is one of ``pairs``, found through an index on
    the two columns.

    Not a chain of ``a AND b OR ...``: SQLite parses one as a tree as deep as the chain
    is long and refuses one deeper than 1000 (a batch of 500 runs failed so). Nor only
    a row-value ``IN``: SQLite scans the whole table for it. Two column ``IN``\ s let
    both databases look the index up for each combination (runs of a batch share
    their few DAGs and schedule times, so combinations are few), and the row-value
    ``IN`` keeps only the pairs asked for.
    """
    return and_(
        first.in_(sorted({a for a, _ in pairs})),
        second.in_(sorted({b for _, b in pairs})),
        tuple_(first, second).in_(pairs),
    )


def _delete_logs(logs_engine: Engine, batch: Sequence[RunRef], log_batch: int) -> int:
    """Delete the task logs of ``batch``'s runs, at most ``log_batch`` lines a transaction."""
    where = _by_run(tasklogs, batch, forms=True)
    postgres = logs_engine.dialect.name == "postgresql"
    deleted = 0
    while True:
        with logs_engine.begin() as conn:
            if postgres:
                # By row address: one index lookup for the lines, then a TID scan.
                found: list[Any] = list(
                    conn.execute(
                        select(literal_column("ctid::text"))
                        .select_from(tasklogs)
                        .where(where)
                        .limit(log_batch)
                    )
                    .scalars()
                    .all()
                )
                n = 0
                if found:
                    # The run's condition again: a row address is only the row's while
                    # the row lives (another prune at once could free and reuse it).
                    by_address = text("ctid = ANY(CAST(:ids AS tid[]))").bindparams(ids=found)
                    n = conn.execute(delete(tasklogs).where(by_address, where)).rowcount
            else:
                some: Any = select(literal_column("rowid")).select_from(tasklogs).where(where)
                n = conn.execute(
                    delete(tasklogs).where(literal_column("rowid").in_(some.limit(log_batch)))
                ).rowcount
        deleted += max(0, n)
        if n < log_batch:
            return deleted


def _delete_runs(engine: Engine, batch: Sequence[RunRef], cutoff: str) -> tuple[list[RunRef], int]:
    """Delete ``batch``'s runs that still qualify and their rows; return them and the count
    of task attempts deleted. One transaction."""
    ids = [r.run_id for r in batch]
    with engine.begin() as conn:
        gone = [
            RunRef(int(r.RunId), r.DagId, r.ExecTs)
            for r in conn.execute(
                delete(dagruns)
                .where(
                    and_(
                        dagruns.c.RunId.in_(ids),
                        dagruns.c.Status.in_(FINISHED),
                        dagruns.c.StatusUpdateTs < cutoff,
                    )
                )
                .returning(dagruns.c.RunId, dagruns.c.DagId, dagruns.c.ExecTs)
            )
        ]
        if not gone:
            return [], 0
        attempts = conn.execute(delete(dagruntasks).where(_by_run(dagruntasks, gone))).rowcount
        for table in (dagruntaskstarts, dagruntaskerrors, dagruntaskoutputs, dagrunrestarts):
            conn.execute(delete(table).where(_by_run(table, gone)))
        gone_ids = [r.run_id for r in gone]
        for table in (dagrunparams, dagrunevents, backfillruns):
            conn.execute(delete(table).where(table.c.RunId.in_(gone_ids)))
        _delete_schedules(conn, gone)
    return gone, max(0, attempts)


def _delete_schedules(conn: Connection, gone: Sequence[RunRef]) -> None:
    """The ``schedules`` rows that created the runs, but each DAG's latest decision."""
    latest = dict(
        conn.execute(
            select(schedules.c.DagId, func.max(schedules.c.ScheduleTs))
            .where(
                and_(
                    schedules.c.DagId.in_({r.dag_id for r in gone}),
                    schedules.c.Event.in_(_POINT_EVENTS),
                )
            )
            .group_by(schedules.c.DagId)
        ).all()
    )
    pairs = [(r.dag_id, r.exec_ts) for r in gone if latest.get(r.dag_id) != r.exec_ts]
    if pairs:
        conn.execute(
            delete(schedules).where(
                and_(
                    _pairs_in(schedules.c.DagId, schedules.c.ScheduleTs, pairs),
                    schedules.c.Event.in_(_RUN_EVENTS),
                )
            )
        )


def prune(
    engine: Engine,
    logs_engine: Engine | None,
    cutoff: str,
    *,
    batch: int = 100,
    log_batch: int = 5000,
    dry_run: bool = False,
    stop: threading.Event | None = None,
) -> PruneResult:
    """Delete the runs that qualify for ``cutoff`` (a stored timestamp), in batches.

    ``logs_engine`` may be ``engine`` (PostgreSQL keeps both in one database) or
    None (no logs DB). ``dry_run`` counts what would go and deletes nothing.
    ``stop`` ends the pass between two batches (for a scheduler that stops).
    Blocking: call it off the event loop. Space is given back by
    :func:`give_space_back`.
    """
    if batch < 1 or log_batch < 1:
        raise ValueError("batch and log_batch must be >= 1")
    result = PruneResult(cutoff)
    for found in find_runs(engine, cutoff):
        if dry_run:
            result.runs += len(found)
            continue
        for runs in _batches(found, batch):
            if stop is not None and stop.is_set():
                result.stopped = True
                return result
            if logs_engine is not None:
                result.log_lines += _delete_logs(logs_engine, runs, log_batch)
            gone, attempts = _delete_runs(engine, runs, cutoff)
            result.runs += len(gone)
            result.skipped += len(runs) - len(gone)
            result.attempts += attempts
            result.batches += 1
    return result


def _sqlite_name(engine: Engine) -> str:
    return str(engine.url.database or ":memory:")


def give_space_back(engine: Engine, stop: threading.Event | None = None) -> SpaceReport:
    """Give a SQLite file's free pages back to the file system, if its mode allows it.

    INCREMENTAL ``auto_vacuum``: a bounded number of pages per transaction until
    none is free, then a WAL checkpoint that truncates the WAL. NONE: the free
    pages stay in the file (reported). PostgreSQL: nothing to do here.
    """
    if engine.dialect.name != "sqlite":
        return SpaceReport(str(engine.url.database), note="PostgreSQL reuses the space")
    name = _sqlite_name(engine)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # A read first: a pooled connection reports the auto_vacuum mode it last read
        # from the file until it reads it again (another process may have vacuumed it).
        conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar_one()
        page = int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
        mode = int(conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one())
        free = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar_one())
        if mode != 2:
            return SpaceReport(
                name,
                kept_bytes=free * page,
                note="auto_vacuum is not INCREMENTAL: free pages stay in the file for reuse; "
                "`ppacer prune --vacuum` rewrites it once in INCREMENTAL mode",
            )
        freed = 0
        # Python's sqlite3 steps a statement once in execute(), and this pragma frees one
        # page per step: executescript() runs it to its end.
        driver: Any = conn.connection.driver_connection
        while free > 0 and not (stop is not None and stop.is_set()):
            driver.executescript(f"PRAGMA incremental_vacuum({_VACUUM_PAGES})")
            left = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar_one())
            if left >= free:
                break
            freed += (free - left) * page
            free = left
        _checkpoint(conn)
    return SpaceReport(name, freed_bytes=freed, kept_bytes=free * page)


def _checkpoint(conn: Connection) -> None:
    """Copy the WAL into the file (which shrinks it to its pages) and empty the WAL, with
    little waiting by the scheduler's writers: a PASSIVE checkpoint first (it blocks no
    one), then a TRUNCATE one, which blocks writers while it runs, for what is left,
    waiting at most ``_TRUNCATE_WAIT_MS`` for readers (else the WAL stays as it is, and
    is reused)."""
    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    busy_ms = int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one())
    conn.exec_driver_sql(f"PRAGMA busy_timeout = {_TRUNCATE_WAIT_MS}")
    try:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {busy_ms}")


def vacuum(engine: Engine) -> SpaceReport:
    """Rewrite a SQLite file in INCREMENTAL ``auto_vacuum`` mode (a full ``VACUUM``: it
    holds the write lock while it copies the whole file, and needs as much free space);
    on PostgreSQL a plain ``VACUUM`` of the tables retention deletes from."""
    if engine.dialect.name != "sqlite":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in _PG_TABLES:
                if conn.dialect.has_table(conn, table):
                    conn.exec_driver_sql(f'VACUUM "{table}"')
        return SpaceReport(str(engine.url.database), note="VACUUM done")
    name = _sqlite_name(engine)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        before = _file_pages(conn)
        conn.exec_driver_sql("PRAGMA auto_vacuum = INCREMENTAL")
        conn.exec_driver_sql("VACUUM")
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        after = _file_pages(conn)
    return SpaceReport(name, freed_bytes=max(0, before - after), note="VACUUM done")


def _file_pages(conn: Connection) -> int:
    """The file's size in bytes, by its page count."""
    pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
    return pages * int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())


_PG_TABLES = (
    "dagruns",
    "dagruntasks",
    "dagruntaskstarts",
    "dagruntaskerrors",
    "dagruntaskoutputs",
    "dagrunparams",
    "dagrunevents",
    "dagrunrestarts",
    "schedules",
    "backfillruns",
    "tasklogs",
)
