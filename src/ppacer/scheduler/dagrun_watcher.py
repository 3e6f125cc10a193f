"""The DAG-run watcher: creates DAG runs when their schedule points come due.

It keeps a min-heap of each scheduled DAG's next point and sleeps until the
earliest one (or until woken), so an idle scheduler does not poll. Points are
created in order and never skipped: when the DAG-run queue is full the
watcher waits; after downtime, missed points are either caught up (DAGs with
``catch_up``) or recorded as one SKIPPED row per skipped range.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from ppacer.dag.dag import Registry
from ppacer.dag.schedule import NEVER, first_point_at_or_after, last_point_before
from ppacer.dag.status import ScheduleEvent
from ppacer.db import controls as controls_db
from ppacer.db import dagruns as runs_db
from ppacer.scheduler.dbgate import DatabaseGate, is_unavailable
from ppacer.timeutils import Clock, format_ts, parse_ts

__all__ = ["DagRunWatcher", "NewDagRun"]

log = logging.getLogger("ppacer.scheduler")

#: Most runs the watcher creates in one transaction.
BATCH = 256
#: A batch of more runs than this is logged in one line at INFO (each run at DEBUG).
LOG_EACH_UP_TO = 8


@dataclass(frozen=True, slots=True)
class NewDagRun:
    """A DAG run created in the database and waiting to be scheduled."""

    run_id: int
    dag_id: str
    exec_ts: str


class DagRunWatcher:
    """Watches schedules and puts new DAG runs onto the DAG-run queue."""

    def __init__(
        self,
        engine: Engine,
        registry: Registry,
        clock: Clock,
        queue: asyncio.Queue[NewDagRun],
        version: str,
        max_sleep_s: float,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.clock = clock
        self.queue = queue
        self.version = version
        self.max_sleep_s = max_sleep_s
        #: Whether the database takes writes (the scheduler sets it): no iteration while not.
        self.gate: DatabaseGate | None = None
        self._heap: list[tuple[datetime, str]] = []
        # Points of a DAG before this time were missed (downtime, pause): event CAUGHT_UP.
        self._catch_up_before: dict[str, datetime] = {}
        self.paused: set[str] = set()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def prepare(self, paused: set[str] | None = None) -> None:
        """Compute each scheduled, unpaused DAG's next point from the ``schedules`` history."""
        now = self.clock.now()
        self.paused = set(paused or ())
        heap: list[tuple[datetime, str]] = []
        with self.engine.begin() as conn:
            for dag in self.registry.values():
                if dag.schedule is not None and dag.id not in self.paused:
                    point = self._resume_point(conn, dag.id, now)
                    if point != NEVER:
                        heap.append((point, dag.id))
        heapq.heapify(heap)
        self._heap = heap

    def _resume_point(self, conn: Connection, dag_id: str, now: datetime) -> datetime:
        """The next point to create for a DAG, applying its catch-up policy to missed points.

        A DAG seen for the first time starts at its first point not in the
        past. After downtime (or a pause), a DAG with ``catch_up`` resumes at
        the first missed point and runs them all in order; one without it runs
        only the latest missed point and records the others as one SKIPPED
        row (``ScheduleTs`` = first skipped, ``NextScheduleTs`` = the point
        that runs), however long the outage was.
        """
        dag = self.registry[dag_id]
        assert dag.schedule is not None
        latest = runs_db.read_latest_schedule(conn, dag_id)
        resume_text = latest.next_schedule_ts if latest is not None else None
        if resume_text is None:
            # No history yet: where it stood when it was paused, if it was.
            resume_text = controls_db.read_pause_resume_ts(conn, dag_id)
        if resume_text is None:
            return first_point_at_or_after(dag.schedule, now)
        resume = parse_ts(resume_text)
        if resume >= now or resume == NEVER:
            return resume
        self._catch_up_before[dag_id] = now
        if dag.attributes.catch_up:
            return resume
        last_missed = last_point_before(dag.schedule, resume, now)
        if last_missed > resume:
            runs_db.insert_schedule(
                conn,
                dag_id,
                ScheduleEvent.SKIPPED,
                format_ts(resume),
                format_ts(last_missed),
                format_ts(now),
            )
            log.info(
                "skipped missed schedule points dagId=%s from=%s until=%s",
                dag_id,
                resume,
                last_missed,
            )
        return last_missed

    def reload(self, registry: Registry) -> None:
        """Watch ``registry``'s DAGs from now on (a hot reload; call on the scheduler's loop).

        DAGs gone are no longer scheduled; a new DAG starts as on start-up; a DAG
        whose schedule changed goes on at the new schedule's first point from now.
        """
        old, self.registry = self.registry, registry
        now = self.clock.now()
        new = [d for d in registry if d not in old]
        changed = [
            d
            for d in registry
            if d in old
            and (repr(old[d].schedule), old[d].start_ts())
            != (repr(registry[d].schedule), registry[d].start_ts())
        ]
        drop = {*new, *changed, *(d for d in old if d not in registry)}
        heap = [(t, d) for t, d in self._heap if d not in drop]
        with self.engine.begin() as conn:
            for dag_id in [*new, *changed]:
                schedule = registry[dag_id].schedule
                if schedule is None or dag_id in self.paused:
                    continue
                if dag_id in new:
                    point = self._resume_point(conn, dag_id, now)
                else:
                    point = first_point_at_or_after(schedule, now)
                if point != NEVER:
                    heap.append((point, dag_id))
        heapq.heapify(heap)
        self._heap = heap
        if self._wake is not None:
            self._wake.set()

    def pending_point(self, dag_id: str) -> datetime | None:
        """The next point the watcher would create for ``dag_id``."""
        return next((t for t, d in self._heap if d == dag_id), None)

    def pause(self, dag_id: str) -> None:
        """Stop creating runs of ``dag_id`` (call on the scheduler's loop)."""
        self.paused.add(dag_id)
        self._heap = [(t, d) for t, d in self._heap if d != dag_id]
        heapq.heapify(self._heap)

    def unpause(self, dag_id: str) -> None:
        """Create runs of ``dag_id`` again; missed points follow its catch-up policy."""
        if dag_id not in self.paused:
            return
        self.paused.discard(dag_id)
        dag = self.registry[dag_id]
        if dag.schedule is None:
            return
        with self.engine.begin() as conn:
            point = self._resume_point(conn, dag_id, self.clock.now())
        if point != NEVER:
            heapq.heappush(self._heap, (point, dag_id))
        if self._wake is not None:
            self._wake.set()

    def next_due(self) -> datetime | None:
        """The earliest pending schedule point, if any."""
        return self._heap[0][0] if self._heap else None

    def wake(self) -> None:
        """Make the watcher look at the clock now (thread-safe)."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        """Create due DAG runs until cancelled; an iteration's error is logged and retried."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while True:
            try:
                if self.gate is None or self.gate.is_open:
                    await self.create_due_runs()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.gate is not None and is_unavailable(exc):
                    self.gate.failed(exc)  # logged once; the points are created when it is back
                else:
                    log.exception("DAG-run watcher iteration failed; retrying")
                await asyncio.sleep(self.max_sleep_s)
                continue
            due = self.next_due()
            timeout = self.max_sleep_s
            if due is not None:
                timeout = min(timeout, self.clock.seconds_until(due))
            if timeout > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)

    async def create_due_runs(self) -> int:
        """Create every run whose point is due, in order; return how many were created.

        Due points are written in batches of :data:`BATCH`, one transaction each
        (a cron-like minute can make thousands of runs due at once). A full
        queue delays the next batch instead of shrinking it: at most one batch
        more than the queue holds waits in memory, and the runs keep the cost
        of a batch each however slowly the queue drains.
        """
        created = 0
        while self._heap and self._heap[0][0] <= self.clock.now():
            batch: list[tuple[str, datetime, datetime, ScheduleEvent]] = []
            now = self.clock.now()
            while self._heap and self._heap[0][0] <= now and len(batch) < BATCH:
                point, dag_id = self._heap[0]
                dag = self.registry[dag_id]
                assert dag.schedule is not None
                following = dag.schedule.next(point, point)
                event = ScheduleEvent.REGULAR
                if point < self._catch_up_before.get(dag_id, point):
                    event = ScheduleEvent.CAUGHT_UP
                batch.append((dag_id, point, following, event))
                # The next point is stored with this one: a crash after the commit
                # never creates this run twice, and never loses the next one.
                if following == NEVER:
                    heapq.heappop(self._heap)
                else:
                    heapq.heapreplace(self._heap, (following, dag_id))
            queue = self.queue
            for run in self._insert_batch(batch):
                if queue.full():
                    await queue.put(run)
                else:  # no coroutine per run: 10,000 of them cost ~20 ms
                    queue.put_nowait(run)
                created += 1
        return created

    def _insert_batch(
        self, batch: list[tuple[str, datetime, datetime, ScheduleEvent]]
    ) -> list[NewDagRun]:
        """Insert the runs and their ``schedules`` rows of ``batch`` in one transaction.

        If one of them exists already (triggered for that exact time), the
        batch is written again one run at a time, so only that one is left out.
        """
        if len(batch) == 1:
            run = self._insert(*batch[0])
            return [run] if run is not None else []
        # The runs of a batch share a point or a few: each time is formatted once.
        stamps: dict[datetime, str] = {}
        rows = []
        for dag_id, point, following, event in batch:
            exec_ts = stamps.get(point) or stamps.setdefault(point, format_ts(point))
            nxt = stamps.get(following) or stamps.setdefault(following, format_ts(following))
            rows.append((dag_id, exec_ts, nxt, event))
        try:
            with self.engine.begin() as conn:
                now = format_ts(self.clock.now())
                run_ids = runs_db.insert_dag_runs(
                    conn, [(dag_id, exec_ts) for dag_id, exec_ts, _, _ in rows], now, self.version
                )
                runs_db.insert_schedules(
                    conn,
                    [(dag_id, event, exec_ts, nxt) for dag_id, exec_ts, nxt, event in rows],
                    now,
                )
        except IntegrityError:
            runs = (self._insert(*item) for item in batch)
            return [run for run in runs if run is not None]
        self._log_created(rows)
        return [
            NewDagRun(run_id, dag_id, exec_ts)
            for run_id, (dag_id, exec_ts, _, _) in zip(run_ids, rows, strict=True)
        ]

    @staticmethod
    def _log_created(rows: list[tuple[str, str, str, ScheduleEvent]]) -> None:
        """A line per run for a few; for more, one line per batch (each run's at DEBUG): 10,000
        DAGs due at one minute would otherwise write 10,000 lines a minute."""
        many = len(rows) > LOG_EACH_UP_TO
        each = logging.DEBUG if many else logging.INFO
        if log.isEnabledFor(each):
            for dag_id, exec_ts, _, event in rows:
                log.log(each, "new DAG run dagId=%s execTs=%s event=%s", dag_id, exec_ts, event)
        if many and log.isEnabledFor(logging.INFO):
            points = sorted({exec_ts for _, exec_ts, _, _ in rows})
            log.info(
                "new DAG runs count=%d dagIds=%s..%s execTs=%s",
                len(rows),
                rows[0][0],
                rows[-1][0],
                ",".join(points) if len(points) <= 3 else f"{points[0]}..{points[-1]}",
            )

    def _insert(
        self, dag_id: str, point: datetime, following: datetime, event: ScheduleEvent
    ) -> NewDagRun | None:
        exec_ts = format_ts(point)
        now = format_ts(self.clock.now())
        try:
            with self.engine.begin() as conn:
                run_id = runs_db.insert_dag_run(conn, dag_id, exec_ts, now, self.version)
                runs_db.insert_schedule(conn, dag_id, event, exec_ts, format_ts(following), now)
        except IntegrityError:
            # A run at this point exists already (triggered for that exact time):
            # record the decision, keep the existing run.
            log.warning(
                "DAG run dagId=%s execTs=%s exists already; not creating it again", dag_id, exec_ts
            )
            with self.engine.begin() as conn:
                runs_db.insert_schedule(conn, dag_id, event, exec_ts, format_ts(following), now)
            return None
        log.info("new DAG run dagId=%s execTs=%s event=%s", dag_id, exec_ts, event)
        return NewDagRun(run_id, dag_id, exec_ts)
