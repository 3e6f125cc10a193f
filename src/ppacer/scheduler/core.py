"""The scheduler without its HTTP face: leadership, start-up sync and recovery, the loops.

``SchedulerCore.prepare(registry)`` takes the database's leadership (or stands
by: see :mod:`ppacer.scheduler.leadership`), syncs the registry with the
database, recovers unfinished DAG runs and builds the parts; ``async with
core.running():`` runs the DAG-run watcher, the task scheduler's consumer and
the backfiller until the block ends, and a standby's wait for its turn.
Everything the HTTP API, the web UI and the one-process runner do goes through
the operations of :class:`~ppacer.scheduler.commands.SchedulerCommands`, which
this class is, and the read layer (:attr:`SchedulerCore.reads`); the HTTP app
itself is built by the composition root, :mod:`ppacer.app`, whose ``Scheduler``
is this class plus ``start()``.

Everything here runs on the scheduler's event loop unless said otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from sqlalchemy import Engine

from ppacer.dag.dag import Registry
from ppacer.dag.status import SchedulerState
from ppacer.db import controls as controls_db
from ppacer.db.checkpoints import FALLBACK_PAGES, WalCheckpointer
from ppacer.db.dags import SyncResult
from ppacer.db.engine import open_logs_db, open_scheduler_db, sqlite_file
from ppacer.errors import PpacerError
from ppacer.notify import LogNotifier, Notifier
from ppacer.scheduler.backfill import Backfiller
from ppacer.scheduler.commands import SchedulerCommands, SchedulerStats
from ppacer.scheduler.config import DEFAULT_CONFIG, Config
from ppacer.scheduler.dagrun_watcher import DagRunWatcher, NewDagRun
from ppacer.scheduler.dbgate import DatabaseGate
from ppacer.scheduler.executors import LogDrops
from ppacer.scheduler.frozen_heap import refreeze
from ppacer.scheduler.leadership import Leadership, read_secret
from ppacer.scheduler.reads import Reads
from ppacer.scheduler.startup import (
    apply_default_timezone,
    consume_runs,
    recover_runs,
    sync_registry,
)
from ppacer.scheduler.task_scheduler import TaskEvent, TaskScheduler
from ppacer.timeutils import Clock, SystemClock
from ppacer.version import __version__

__all__ = ["SchedulerCore", "SchedulerStats"]

log = logging.getLogger("ppacer.scheduler")


class SchedulerCore(SchedulerCommands):
    """Watches schedules, schedules tasks, takes reports; one per database.

    Any number of executors talk to it over HTTP (:mod:`ppacer.server`).
    """

    def __init__(
        self,
        db: str | Engine,
        config: Config = DEFAULT_CONFIG,
        *,
        logs_db: str | Engine | None = None,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        # SQLite: while the scheduler runs, a thread checkpoints the WAL (running()).
        self.engine = open_scheduler_db(
            db,
            upgrade=config.upgrade_db,
            busy_timeout_s=config.db_wait_s,
            wal_autocheckpoint=FALLBACK_PAGES,
        )
        #: Whether the database takes writes now (see ppacer.scheduler.dbgate).
        self.gate = DatabaseGate(self.engine)
        self.logs_engine = (
            open_logs_db(logs_db, upgrade=config.upgrade_db, wal_autocheckpoint=FALLBACK_PAGES)
            if logs_db is not None
            else None
        )
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.notifier: Notifier = notifier if notifier is not None else LogNotifier()
        self.version = __version__
        self._state = SchedulerState.STARTED
        self.registry: Registry = Registry()
        self.task_scheduler: TaskScheduler | None = None
        self.watcher: DagRunWatcher | None = None
        self.backfiller: Backfiller | None = None
        self.reads = Reads(self.engine, self.logs_engine, self.registry, self.is_active)
        #: Who leads the database (set by :meth:`prepare`).
        self.leadership: Leadership | None = None
        self._observers: list[Callable[[TaskEvent], None]] = []
        self._queue: asyncio.Queue[NewDagRun] | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Why the DAG files could not be reloaded (a hot reload that failed: the
        #: last good DAGs stay in use), until a reload succeeds. Shown by the UI.
        self.reload_error: str | None = None
        #: Task log lines the logs DB could not store (it was full), for the metrics.
        self.log_drops = LogDrops()

    @property
    def state(self) -> SchedulerState:
        """The scheduler's life-cycle state."""
        return self._state

    @property
    def is_prepared(self) -> bool:
        """Whether :meth:`prepare` has run."""
        return self.leadership is not None

    # ------------------------------------------------------------------ start-up

    def prepare(self, registry: Registry) -> None:
        """Take leadership (or stand by), sync the registry, recover runs, build the loops.

        SQLite: a second scheduler on the same file is refused
        (:class:`~ppacer.scheduler.leadership.SchedulerConflictError`).
        PostgreSQL: when another scheduler leads, this one stands by
        (:attr:`is_standby`) and takes over when the leader's lease lapses.
        """
        if self.is_prepared:
            raise PpacerError("the scheduler was started already")
        if not isinstance(registry, Registry):
            registry = Registry(registry)
        self.registry = registry
        apply_default_timezone(registry, self.config.timezone)
        self.reads = Reads(self.engine, self.logs_engine, registry, self.is_active)
        self.leadership = Leadership(
            self.engine,
            url=self.config.advertise_url,
            code_hash=registry.fingerprint(),
            ttl_s=self.config.leader_lease_s,
            poll_s=self.config.standby_poll_s,
        )
        if self.leadership.acquire():
            self._build()
        else:
            self._state = SchedulerState.STANDBY
            log.info("standing by: %s leads", self.leader_url() or "another scheduler")

    def _build(self) -> None:
        """Lead: sync the registry, recover unfinished runs and build the parts."""
        registry = self.registry
        self.gate.reset()
        self._state = SchedulerState.SYNCHRONIZING
        sync_registry(self.engine, registry, self.clock, self.version, self.config.timezone)
        with self.engine.connect() as conn:
            secret = read_secret(conn)
            paused = controls_db.read_paused_dags(conn)
        tasks = TaskScheduler(
            self.engine,
            registry,
            self.clock,
            self.version,
            self.notifier,
            lease_timeout_s=self.config.lease_timeout_s,
            timeout_grace_s=self.config.timeout_grace_s,
            secret=secret,
            recovery_grace_s=self.config.recovery_grace_s,
        )
        tasks.gate = self.gate
        tasks.observers.extend(self._observers)
        recover_runs(tasks)
        watcher = DagRunWatcher(
            self.engine,
            registry,
            self.clock,
            asyncio.Queue(self.config.dag_run_queue_len),
            self.version,
            self.config.max_watch_sleep_s,
        )
        watcher.prepare(paused)
        backfiller = Backfiller(self.engine, registry, self.clock, self.version, watcher.queue)
        backfiller.load()
        tasks.on_run_finished = lambda run: backfiller.on_run_finished(run.run_id, run.status)
        self.task_scheduler, self.watcher, self.backfiller = tasks, watcher, backfiller
        self._queue = watcher.queue
        on_change = getattr(self.clock, "on_change", None)
        if callable(on_change):
            on_change(watcher.wake)

    def reload(self, registry: Registry) -> SyncResult | None:
        """Hot reload: DAGs in code changed; sync them and schedule from them from now on.

        New task versions are recorded in ``dagtasks``; runs already started keep
        the DAG version they started with (their attempts carry its code versions),
        new runs use the new one; the watcher follows new, gone and rescheduled DAGs.
        A standby only keeps ``registry`` for when it takes over. Call it on the
        scheduler's loop; what was synced, or None on a standby.
        """
        if not isinstance(registry, Registry):
            registry = Registry(registry)
        apply_default_timezone(registry, self.config.timezone)
        self.registry = self.reads.registry = registry
        self.reload_error = None
        if self.leadership is not None:
            self.leadership.use_code(registry.fingerprint())
        if self.task_scheduler is None:
            return None
        tasks, watcher, backfiller = self._parts()
        synced = sync_registry(
            self.engine, registry, self.clock, self.version, self.config.timezone
        )
        tasks.use_registry(registry)
        backfiller.registry = registry
        watcher.reload(registry)
        refreeze()
        log.info("reloaded %d DAGs", len(registry))
        return synced

    def reload_failed(self, error: str) -> None:
        """The DAG files changed but cannot be loaded: keep the last good DAGs, say why.

        Thread-safe (a file watcher calls it); cleared by the next successful :meth:`reload`.
        """
        self.reload_error = error
        log.error("hot reload failed, the DAGs loaded before stay in use: %s", error)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the scheduler runs on (None before :meth:`running`)."""
        return self._loop

    def reload_from_thread(self, registry: Registry, timeout_s: float = 60.0) -> SyncResult | None:
        """:meth:`reload` from another thread (a file watcher): done on the loop, waited for."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return self.reload(registry)

        async def on_loop() -> SyncResult | None:
            return self.reload(registry)

        return asyncio.run_coroutine_threadsafe(on_loop(), loop).result(timeout_s)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the loops on the current event loop until the block ends, then stop them.

        A standby waits for its turn meanwhile; a leader of a PostgreSQL database
        keeps its lease (and steps down to standby if it loses it). At the end,
        leadership is given up at once, for a standby to take over.
        """
        if self.leadership is None:
            raise PpacerError("scheduler not started")
        leadership = self.leadership
        self._loop = asyncio.get_running_loop()
        self.gate.bind(self._loop)
        self.gate.on_recovered = self._reconcile
        if self.task_scheduler is not None:
            self._start_loops()
        role = None
        if leadership.is_lease:
            role = asyncio.create_task(self._keep_role(leadership), name="ppacer-leadership")
        files = self._sqlite_files()
        checkpointer = WalCheckpointer(files) if files else None
        if checkpointer is not None:
            checkpointer.start()
        try:
            yield
        finally:
            self.begin_stop()
            if role is not None:
                role.cancel()
                await asyncio.gather(role, return_exceptions=True)
            await self._stop_loops()
            if checkpointer is not None:
                await asyncio.to_thread(checkpointer.stop)
            await asyncio.to_thread(leadership.release)
            leadership.close()
            self._state = SchedulerState.STOPPED
            log.info("scheduler stopped")

    def _sqlite_files(self) -> list[str]:
        """The SQLite database files this scheduler writes (for their WAL checkpointers)."""
        files: list[str] = []
        for engine in (self.engine, self.logs_engine):
            path = sqlite_file(engine) if engine is not None else None
            if path is not None and path not in files:
                files.append(path)
        return files

    def _start_loops(self) -> None:
        tasks, watcher, backfiller = self._parts()
        assert self._loop is not None
        watcher.gate = backfiller.gate = self.gate
        tasks.start_timers(self._loop)
        self._loops = [
            asyncio.create_task(watcher.run(), name="ppacer-dagrun-watcher"),
            asyncio.create_task(consume_runs(watcher.queue, tasks), name="ppacer-task-scheduler"),
            asyncio.create_task(backfiller.run(), name="ppacer-backfiller"),
        ]
        if self.config.retention_days is not None:
            from ppacer.scheduler.retention import retention_loop  # only when configured

            # Deletes finished runs past their age, in batches, off the event loop.
            self._loops.append(asyncio.create_task(retention_loop(self), name="ppacer-retention"))
        self._state = SchedulerState.RUNNING
        log.info("scheduler running")

    async def _stop_loops(self) -> None:
        for loop_task in self._loops:
            loop_task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        self.gate.stop()
        if self.task_scheduler is not None:
            self.task_scheduler.stop()

    async def _keep_role(self, leadership: Leadership) -> None:
        """Lead while the lease holds; stand by (and take over) while it does not."""
        while True:
            if self.task_scheduler is None:
                await leadership.wait_for_turn()
                log.warning("taking over as the leader (epoch %s)", leadership.epoch)
                try:
                    self._build()
                except Exception:
                    log.exception("could not take over; standing by again")
                    await asyncio.to_thread(leadership.release)
                    leadership.step_down()
                    self._drop_parts()
                    await asyncio.sleep(leadership.poll_s)
                    continue
                self._start_loops()
            reason = await leadership.hold()
            log.error("stepping down to standby: %s", reason)
            self._state = SchedulerState.STANDBY
            if self.task_scheduler is not None:
                self.task_scheduler.release_waiters()
            await self._stop_loops()
            leadership.step_down()
            self._drop_parts()

    def _drop_parts(self) -> None:
        self.task_scheduler = self.watcher = self.backfiller = None
        self._queue = None
        self.gate.reset()
        self._state = SchedulerState.STANDBY

    async def _reconcile(self) -> None:
        """The database is back: rebuild memory from it (called by the gate's prober)."""
        tasks, watcher, backfiller = self._parts()
        active = tasks.reconcile()
        log.info("reconciled with the database: %d active DAG runs", active)
        watcher.wake()
        backfiller.wake()

    def loop_health(self) -> dict[str, str]:
        """Each loop by name: "ok", "stopped" or "crashed: ..."."""
        out = {}
        for loop_task in self._loops:
            if not loop_task.done():
                out[loop_task.get_name()] = "ok"
            elif loop_task.cancelled():
                out[loop_task.get_name()] = "stopped"
            else:
                out[loop_task.get_name()] = f"crashed: {loop_task.exception()!r}"
        return out

    def begin_stop(self) -> None:
        """Enter STOPPING: answer pending long polls with nothing and hand out no more tasks."""
        if self._state in (SchedulerState.STOPPING, SchedulerState.STOPPED):
            return
        self._state = SchedulerState.STOPPING
        if self.task_scheduler is not None:
            self.task_scheduler.release_waiters()

    def stop_soon(self) -> None:
        """Thread-safe :meth:`begin_stop`, for code outside the scheduler's loop.

        Leadership is given up first, at once (blocking): a standby takes over
        while this one finishes its requests, whose writes are refused from now on.
        """
        if self.leadership is not None:
            self.leadership.resign()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.begin_stop)

    def close(self) -> None:
        """Release database connections (after the loops have stopped)."""
        self.engine.dispose()
        if self.logs_engine is not None:
            self.logs_engine.dispose()
