"""Start-up and the intake of new runs: syncing the registry, recovering runs, starting runs.

- :func:`sync_registry` brings ``dags``/``dagtasks`` in line with the DAGs in code;
- :func:`recover_runs` makes the runs a stopped scheduler left unfinished active again;
- :func:`consume_runs` is the loop that starts the runs the watcher, the API and the
  backfiller create (whatever is queued at once starts in one transaction).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine

from ppacer.dag.dag import Registry
from ppacer.dag.status import DagRunStatus
from ppacer.db import dagruns as runs_db
from ppacer.db.dags import SyncResult, sync_dags
from ppacer.scheduler.dagrun_watcher import NewDagRun
from ppacer.scheduler.task_scheduler import TaskScheduler
from ppacer.timeutils import Clock, format_ts, monotonic

__all__ = ["RUN_BATCH", "apply_default_timezone", "consume_runs", "recover_runs", "sync_registry"]

log = logging.getLogger("ppacer.scheduler")

#: Most queued runs started in one transaction.
RUN_BATCH = 256


def apply_default_timezone(registry: Registry, timezone: str) -> None:
    """Cron schedules without a zone of their own take the scheduler's ``timezone``."""
    for dag in registry.values():
        with_default_tz = getattr(dag.schedule, "with_default_tz", None)
        if callable(with_default_tz):
            dag.schedule = with_default_tz(timezone)


def sync_registry(
    engine: Engine, registry: Registry, clock: Clock, version: str, timezone: str
) -> SyncResult:
    """Store the registry's DAGs and task versions; zone-less crons take ``timezone``."""
    apply_default_timezone(registry, timezone)
    started = monotonic()
    log.info("Start syncing DAG registry with dags and dagtasks tables")
    with engine.begin() as conn:
        result = sync_dags(conn, registry.values(), format_ts(clock.now()), version)
    log.info(
        "Finished syncing DAG registry with dags and dagtasks tables duration=%.3fms "
        "dagsInserted=%d dagsUpdated=%d tasksInserted=%d tasksRetired=%d",
        (monotonic() - started) * 1000,
        result.dags_inserted,
        result.dags_updated,
        result.tasks_inserted,
        result.tasks_retired,
    )
    return result


def recover_runs(tasks: TaskScheduler) -> int:
    """Make unfinished runs active again (or queue them under ``max_active_runs``); how many."""
    with tasks.transaction() as conn:
        unfinished = runs_db.read_unfinished_dag_runs(conn)
        for row in unfinished:
            if row.status is DagRunStatus.READY_TO_SCHEDULE:
                tasks.submit(conn, row)
            else:
                tasks.load_run(conn, row)
    if unfinished:
        log.info("recovered %d unfinished DAG runs", len(unfinished))
    return len(unfinished)


async def consume_runs(queue: asyncio.Queue[NewDagRun], tasks: TaskScheduler) -> None:
    """Start the runs put on ``queue``; whatever is queued at once starts in one transaction."""
    while True:
        runs = [await queue.get()]
        while len(runs) < RUN_BATCH and not queue.empty():
            runs.append(queue.get_nowait())
        try:
            _start_runs(tasks, runs)
        except Exception:
            if len(runs) == 1:
                # The run stays READY_TO_SCHEDULE in the database and is recovered on start.
                log.exception("could not start DAG run %s of %s", runs[0].exec_ts, runs[0].dag_id)
                continue
            # One bad run must not hold the others back: start them one by one.
            for run in runs:
                try:
                    _start_runs(tasks, [run])
                except Exception:
                    log.exception("could not start DAG run %s of %s", run.exec_ts, run.dag_id)


def _start_runs(tasks: TaskScheduler, runs: list[NewDagRun]) -> None:
    with tasks.transaction() as conn:
        ids = [run.run_id for run in runs]
        rows = runs_db.read_dag_runs(conn, ids)
        params = runs_db.read_dag_runs_params(conn, ids)
        for run_id in ids:
            row = rows.get(run_id)
            if row is None or tasks.is_active(row.dag_id, row.exec_ts):
                continue
            # Never loaded yet: nothing of it to read back but its parameters.
            fresh = row.status is DagRunStatus.READY_TO_SCHEDULE
            tasks.submit(conn, row, new_params=params.get(run_id, {}) if fresh else None)
