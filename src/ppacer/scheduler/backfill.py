"""Backfills: the runs of a DAG's schedule points in a past range, in order, a few at a time.

A backfill's progress (the next point to create) is written in the same
transaction as each run it creates, so a backfill interrupted by a stop
resumes where it was and creates every run exactly once. Points that already
have a run (a regular one, or an earlier backfill's) are skipped; how many
there were when the backfill was created is part of the answer to its request.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from ppacer.dag.dag import Registry
from ppacer.dag.schedule import NEVER, Schedule, first_point_at_or_after
from ppacer.dag.status import DagRunStatus, ScheduleEvent
from ppacer.db import controls as controls_db
from ppacer.db import dagruns as runs_db
from ppacer.errors import InvalidInputError, NotFoundError
from ppacer.scheduler.dagrun_watcher import NewDagRun
from ppacer.scheduler.dbgate import DatabaseGate, is_unavailable
from ppacer.timeutils import Clock, format_ts, parse_ts

__all__ = ["Backfiller"]

log = logging.getLogger("ppacer.scheduler")


class Backfiller:
    """Creates backfill runs as earlier ones finish, up to each backfill's concurrency."""

    def __init__(
        self,
        engine: Engine,
        registry: Registry,
        clock: Clock,
        version: str,
        queue: asyncio.Queue[NewDagRun],
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.clock = clock
        self.version = version
        self.queue = queue
        #: Whether the database takes writes (the scheduler sets it): no step while not.
        self.gate: DatabaseGate | None = None
        # Unfinished runs of each RUNNING backfill, and whether any of its runs failed.
        self._active: dict[int, set[int]] = {}
        self._failed: dict[int, bool] = {}
        self._wake: asyncio.Event | None = None

    def load(self) -> None:
        """Pick up the backfills that were RUNNING when the scheduler stopped."""
        with self.engine.connect() as conn:
            for bf in controls_db.read_active_backfills(conn):
                self._active[bf.backfill_id] = set()
                self._failed[bf.backfill_id] = False
                for run_id in controls_db.read_backfill_run_ids(conn, bf.backfill_id):
                    run = runs_db.read_dag_run(conn, run_id)
                    if run is None:
                        continue
                    if not run.status.is_finished:
                        self._active[bf.backfill_id].add(run_id)
                    elif run.status is DagRunStatus.FAILED:
                        self._failed[bf.backfill_id] = True

    def create(
        self,
        dag_id: str,
        start: datetime,
        end: datetime,
        max_active_runs: int = 4,
        actor: str = "api",
    ) -> tuple[controls_db.BackfillRow, int]:
        """Record a backfill of ``dag_id``'s points in ``[start, end]`` and start it.

        Returns the backfill and how many of its points have a run already
        (those it will skip), counted in the transaction that records it.
        """
        dag = self.registry.get(dag_id)
        if dag is None:
            raise NotFoundError(f"dagId: unknown DAG {dag_id!r}")
        if dag.schedule is None:
            raise InvalidInputError(f"dagId: DAG {dag_id!r} has no schedule to backfill")
        if end < start:
            raise InvalidInputError(f"to: {format_ts(end)} is before from: {format_ts(start)}")
        if max_active_runs < 1:
            raise InvalidInputError(f"maxActiveRuns: must be >= 1, got {max_active_runs}")
        first = first_point_at_or_after(dag.schedule, start)
        next_ts = format_ts(first) if first <= end and first != NEVER else None
        now = format_ts(self.clock.now())
        with self.engine.begin() as conn:
            runs_at = runs_db.read_exec_ts_between(conn, dag_id, format_ts(start), format_ts(end))
            backfill_id = controls_db.insert_backfill(
                conn, dag_id, format_ts(start), format_ts(end), max_active_runs, next_ts, now, actor
            )
            row = controls_db.read_backfill(conn, backfill_id)
        assert row is not None
        existing = sum(1 for ts in runs_at if _is_point(dag.schedule, parse_ts(ts)))
        self._active[backfill_id] = set()
        self._failed[backfill_id] = False
        log.info(
            "backfill %d of %s from %s to %s (%d points have a run already)",
            backfill_id,
            dag_id,
            start,
            end,
            existing,
        )
        self.wake()
        return row, existing

    def on_run_finished(self, run_id: int, status: DagRunStatus) -> None:
        """Called by the task scheduler when any run finishes."""
        for backfill_id, runs in self._active.items():
            if run_id in runs:
                runs.discard(run_id)
                if status is DagRunStatus.FAILED:
                    self._failed[backfill_id] = True
                self.wake()
                return

    def wake(self) -> None:
        """Make the backfill loop look at its backfills again."""
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Create backfill runs until cancelled."""
        self._wake = asyncio.Event()
        while True:
            self._wake.clear()
            try:
                if self.gate is None or self.gate.is_open:
                    await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.gate is not None and is_unavailable(exc):
                    self.gate.failed(exc)  # logged once; woken when it is back
                else:
                    log.exception("backfill step failed; trying again")
                    await asyncio.sleep(1.0)
                continue
            await self._wake.wait()

    async def _step(self) -> None:
        with self.engine.connect() as conn:
            backfills = controls_db.read_active_backfills(conn)
        for bf in backfills:
            active = self._active.setdefault(bf.backfill_id, set())
            next_ts = bf.next_ts
            while next_ts is not None and len(active) < bf.max_active_runs:
                next_ts, run = self._create_run(bf, parse_ts(next_ts))
                if run is not None:
                    active.add(run.run_id)
                    await self.queue.put(run)
            if next_ts is None and not active:
                status = "FAILED" if self._failed.get(bf.backfill_id) else "SUCCESS"
                with self.engine.begin() as conn:
                    controls_db.update_backfill(
                        conn,
                        bf.backfill_id,
                        format_ts(self.clock.now()),
                        next_ts=None,
                        status=status,
                    )
                self._active.pop(bf.backfill_id, None)
                log.info("backfill %d finished: %s", bf.backfill_id, status)

    def _create_run(
        self, bf: controls_db.BackfillRow, point: datetime
    ) -> tuple[str | None, NewDagRun | None]:
        """Create the run at ``point`` and move the backfill on, in one transaction."""
        dag = self.registry[bf.dag_id]
        assert dag.schedule is not None
        following = dag.schedule.next(point, point)
        next_ts = (
            format_ts(following) if following != NEVER and following <= parse_ts(bf.to_ts) else None
        )
        exec_ts = format_ts(point)
        now = format_ts(self.clock.now())
        try:
            with self.engine.begin() as conn:
                run_id = runs_db.insert_dag_run(conn, bf.dag_id, exec_ts, now, self.version)
                runs_db.insert_schedule(
                    conn, bf.dag_id, ScheduleEvent.OUT_OF_BAND, exec_ts, next_ts, now
                )
                controls_db.insert_backfill_run(conn, bf.backfill_id, run_id)
                controls_db.insert_run_event(
                    conn, run_id, "BACKFILL", now, bf.actor, detail={"backfillId": bf.backfill_id}
                )
                controls_db.update_backfill(
                    conn, bf.backfill_id, now, next_ts=next_ts, status="RUNNING"
                )
        except IntegrityError:
            # The point has a run already: skip it, keep going.
            with self.engine.begin() as conn:
                controls_db.update_backfill(
                    conn, bf.backfill_id, now, next_ts=next_ts, status="RUNNING"
                )
            log.info("backfill %d: %s %s has a run already", bf.backfill_id, bf.dag_id, exec_ts)
            return next_ts, None
        return next_ts, NewDagRun(run_id, bf.dag_id, exec_ts)


def _is_point(schedule: Schedule, when: datetime) -> bool:
    """Whether ``when`` is a point of ``schedule`` (a run there is one a backfill would make)."""
    return first_point_at_or_after(schedule, when) == when
