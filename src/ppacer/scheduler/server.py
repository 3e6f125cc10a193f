"""The Scheduler: start-up sync and recovery, the loops, and the HTTP API they serve."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.routing import Route as StarletteRoute

from ppacer.api.models import (
    BackfillInput,
    DagInput,
    DagRunRestartInput,
    DagRunTriggerInput,
    HeartbeatInput,
    StatusReport,
    TaskActionInput,
    TaskMarkInput,
    TaskStatusUpdate,
    TaskStatusUpdates,
    describe_validation_error,
    validation_detail,
)
from ppacer.api.routes import ROUTES
from ppacer.api.schemas import PageQuery
from ppacer.api.strictjson import JsonInputError, loads_strict
from ppacer.dag.dag import Registry
from ppacer.dag.schedule import NEVER
from ppacer.dag.status import DagRunStatus, ScheduleEvent, SchedulerState, TaskStatus
from ppacer.db import controls as controls_db
from ppacer.db import dagruns as runs_db
from ppacer.db.dags import sync_dags
from ppacer.db.engine import open_logs_db, open_scheduler_db
from ppacer.errors import ConflictError, InvalidInputError, NotFoundError, PpacerError
from ppacer.notify import LogNotifier, Notifier
from ppacer.scheduler import ui_data
from ppacer.scheduler.backfill import Backfiller
from ppacer.scheduler.config import DEFAULT_CONFIG, Config
from ppacer.scheduler.dagrun_watcher import DagRunWatcher, NewDagRun
from ppacer.scheduler.read_api import parse_params
from ppacer.scheduler.task_scheduler import TaskScheduler
from ppacer.timeutils import Clock, SystemClock, format_ts, monotonic, parse_ts
from ppacer.version import __version__

__all__ = ["Scheduler"]

log = logging.getLogger("ppacer.scheduler")

#: Most queued runs started in one transaction.
RUN_BATCH = 256

Handler = Callable[[Request], Awaitable[Response]]
_M = TypeVar("_M", bound=BaseModel)


def error_response(status: int, error: str, detail: Any = None) -> JSONResponse:
    """The one error shape of the API: ``{"error": ..., "detail": ...}``."""
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


class Scheduler:
    """The heart of ppacer: watches schedules, schedules tasks, serves the HTTP API.

    ``start(registry)`` syncs the registry with the database, recovers
    unfinished DAG runs and returns the ASGI app; the app's lifespan runs the
    DAG-run watcher and the task scheduler. There is one Scheduler per
    database; any number of executors talk to it over HTTP.
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
        self.engine = open_scheduler_db(db)
        self.logs_engine = open_logs_db(logs_db) if logs_db is not None else None
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.notifier: Notifier = notifier if notifier is not None else LogNotifier()
        self.version = __version__
        self._state = SchedulerState.STARTED
        self.registry: Registry = Registry()
        self.task_scheduler: TaskScheduler | None = None
        self.watcher: DagRunWatcher | None = None
        self.backfiller: Backfiller | None = None
        self._queue: asyncio.Queue[NewDagRun] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.app: Starlette | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def state(self) -> SchedulerState:
        """The scheduler's life-cycle state."""
        return self._state

    # ------------------------------------------------------------------ start-up

    def start(self, registry: Registry) -> Starlette:
        """Sync ``registry`` with the database, recover unfinished runs, return the ASGI app."""
        if self.app is not None:
            raise PpacerError("Scheduler.start was called already")
        if not isinstance(registry, Registry):
            registry = Registry(registry)
        self.registry = registry
        for dag in registry.values():
            # Cron schedules without a zone of their own use the scheduler's timezone.
            with_default_tz = getattr(dag.schedule, "with_default_tz", None)
            if callable(with_default_tz):
                dag.schedule = with_default_tz(self.config.timezone)
        self._state = SchedulerState.SYNCHRONIZING
        started = monotonic()
        log.info("Start syncing DAG registry with dags and dagtasks tables")
        with self.engine.begin() as conn:
            result = sync_dags(conn, registry.values(), format_ts(self.clock.now()), self.version)
        log.info(
            "Finished syncing DAG registry with dags and dagtasks tables duration=%.3fms "
            "dagsInserted=%d dagsUpdated=%d tasksInserted=%d tasksRetired=%d",
            (monotonic() - started) * 1000,
            result.dags_inserted,
            result.dags_updated,
            result.tasks_inserted,
            result.tasks_retired,
        )
        self.task_scheduler = TaskScheduler(
            self.engine,
            registry,
            self.clock,
            self.version,
            self.notifier,
            lease_timeout_s=self.config.lease_timeout_s,
            timeout_grace_s=self.config.timeout_grace_s,
        )
        with self.task_scheduler.transaction() as conn:
            unfinished = runs_db.read_unfinished_dag_runs(conn)
            for row in unfinished:
                if row.status is DagRunStatus.READY_TO_SCHEDULE:
                    self.task_scheduler.submit(conn, row)
                else:
                    self.task_scheduler.load_run(conn, row)
        if unfinished:
            log.info("recovered %d unfinished DAG runs", len(unfinished))
        self.watcher = DagRunWatcher(
            self.engine,
            registry,
            self.clock,
            asyncio.Queue(self.config.dag_run_queue_len),
            self.version,
            self.config.max_watch_sleep_s,
        )
        with self.engine.connect() as conn:
            paused = controls_db.read_paused_dags(conn)
        self.watcher.prepare(paused)
        self._queue = self.watcher.queue
        self.backfiller = Backfiller(
            self.engine, registry, self.clock, self.version, self.watcher.queue
        )
        self.backfiller.load()
        backfiller = self.backfiller
        self.task_scheduler.on_run_finished = lambda run: backfiller.on_run_finished(
            run.run_id, run.status
        )
        on_change = getattr(self.clock, "on_change", None)
        if callable(on_change):
            on_change(self.watcher.wake)
        self.app = self._build_app()
        return self.app

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        assert self.task_scheduler is not None and self.watcher is not None
        assert self.backfiller is not None
        self._loop = asyncio.get_running_loop()
        self.task_scheduler.start_timers(self._loop)
        self._tasks = [
            asyncio.create_task(self.watcher.run(), name="ppacer-dagrun-watcher"),
            asyncio.create_task(self._consume_runs(), name="ppacer-task-scheduler"),
            asyncio.create_task(self.backfiller.run(), name="ppacer-backfiller"),
        ]
        self._state = SchedulerState.RUNNING
        log.info("scheduler running")
        try:
            yield
        finally:
            self.begin_stop()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for state in self.task_scheduler.active.values():
                state.cancel_timers()
            self._state = SchedulerState.STOPPED
            log.info("scheduler stopped")

    def begin_stop(self) -> None:
        """Enter STOPPING: answer pending long polls with 204 and hand out no more tasks.

        Call it on the scheduler's event loop.
        """
        if self._state in (SchedulerState.STOPPING, SchedulerState.STOPPED):
            return
        self._state = SchedulerState.STOPPING
        if self.task_scheduler is not None:
            self.task_scheduler.release_waiters()

    def stop_soon(self) -> None:
        """Thread-safe :meth:`begin_stop`, for code outside the scheduler's loop."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.begin_stop)

    def close(self) -> None:
        """Release database connections (after the app has stopped)."""
        self.engine.dispose()
        if self.logs_engine is not None:
            self.logs_engine.dispose()

    async def _consume_runs(self) -> None:
        """Start the runs put on the queue; whatever is queued at once starts in one transaction."""
        assert self._queue is not None
        while True:
            runs = [await self._queue.get()]
            while len(runs) < RUN_BATCH and not self._queue.empty():
                runs.append(self._queue.get_nowait())
            try:
                self._start_runs(runs)
            except Exception:
                if len(runs) == 1:
                    # The run stays READY_TO_SCHEDULE in the database and is recovered on start.
                    log.exception(
                        "could not start DAG run %s of %s", runs[0].exec_ts, runs[0].dag_id
                    )
                    continue
                # One bad run must not hold the others back: start them one by one.
                for run in runs:
                    try:
                        self._start_runs([run])
                    except Exception:
                        log.exception("could not start DAG run %s of %s", run.exec_ts, run.dag_id)

    def _start_runs(self, runs: list[NewDagRun]) -> None:
        assert self.task_scheduler is not None
        ts = self.task_scheduler
        with ts.transaction() as conn:
            ids = [run.run_id for run in runs]
            rows = runs_db.read_dag_runs(conn, ids)
            params = runs_db.read_dag_runs_params(conn, ids)
            for run_id in ids:
                row = rows.get(run_id)
                if row is None or (row.dag_id, row.exec_ts) in ts.active:
                    continue
                # Never loaded yet: nothing of it to read back but its parameters.
                fresh = row.status is DagRunStatus.READY_TO_SCHEDULE
                ts.submit(conn, row, new_params=params.get(run_id, {}) if fresh else None)

    # ------------------------------------------------------------------ operations

    async def trigger(
        self,
        dag_id: str,
        params: dict[str, Any] | None = None,
        exec_ts: datetime | None = None,
        actor: str = "api",
    ) -> NewDagRun:
        """Create a DAG run now, or for the logical time ``exec_ts``; returns it once queued.

        A second run of a DAG for the same logical time is a :class:`ConflictError`.
        Call it on the scheduler's loop.
        """
        if dag_id not in self.registry:
            raise NotFoundError(f"dagId: unknown DAG {dag_id!r}")
        assert self._queue is not None
        now = format_ts(self.clock.now())
        logical = format_ts(exec_ts) if exec_ts is not None else now
        try:
            with self.engine.begin() as conn:
                run_id = runs_db.insert_dag_run(
                    conn, dag_id, logical, now, self.version, DagRunStatus.READY_TO_SCHEDULE, params
                )
                runs_db.insert_schedule(
                    conn, dag_id, ScheduleEvent.MANUALLY_TRIGGERED, logical, None, now
                )
                controls_db.insert_run_event(
                    conn, run_id, "TRIGGER", now, actor, detail={"params": params or {}}
                )
        except IntegrityError:
            raise ConflictError(f"DAG {dag_id!r} already has a run at {logical}") from None
        exec_ts_text = logical
        run = NewDagRun(run_id, dag_id, exec_ts_text)
        log.info("DAG run triggered dagId=%s execTs=%s runId=%d", dag_id, exec_ts_text, run_id)
        await self._queue.put(run)
        return run

    def set_paused(self, dag_id: str, paused: bool, actor: str = "api") -> None:
        """Pause (no new scheduled runs) or unpause a DAG; persisted. Call on the loop."""
        if dag_id not in self.registry:
            raise NotFoundError(f"dagId: unknown DAG {dag_id!r}")
        assert self.watcher is not None
        pending = self.watcher.pending_point(dag_id)
        with self.engine.begin() as conn:
            controls_db.set_dag_paused(
                conn,
                dag_id,
                paused,
                format_ts(self.clock.now()),
                actor,
                format_ts(pending) if pending is not None else None,
            )
        if paused:
            self.watcher.pause(dag_id)
        else:
            self.watcher.unpause(dag_id)
        log.info("DAG %s %s by %s", dag_id, "paused" if paused else "unpaused", actor)

    def schedule_preview(
        self, dag_id: str, n: int, after: datetime | None = None
    ) -> list[dict[str, str]]:
        """The next ``n`` schedule points of a DAG after ``after`` (default: now), UTC and local."""
        dag = self.registry.get(dag_id)
        if dag is None:
            raise NotFoundError(f"dagId: unknown DAG {dag_id!r}")
        if dag.schedule is None:
            return []
        zone = ZoneInfo(getattr(dag.schedule, "tz", None) or self.config.timezone)
        point = self.clock.now() if after is None else after
        out = []
        for _ in range(n):
            point = dag.schedule.next(point, None)
            if point == NEVER:
                break
            out.append({"utc": format_ts(point), "local": point.astimezone(zone).isoformat()})
        return out

    # ------------------------------------------------------------------ HTTP

    def _build_app(self) -> Starlette:
        handlers: dict[str, Handler] = {
            "pop_task": self._pop_task,
            "executor_heartbeat": self._executor_heartbeat,
            "pop_tasks": self._pop_tasks,
            "update_task_statuses": self._update_task_statuses,
            "update_task_status": self._update_task_status,
            "trigger_dag_run": self._trigger_dag_run,
            "restart_dag_run": self._restart_dag_run,
            "state": self._get_state,
            "ui_dagrun_stats": self._ui_stats,
            "ui_dagrun_latest": self._ui_latest,
            "ui_dagrun_details": self._ui_details,
            "ui_dagrun_task_details": self._ui_task_details,
            "pause_dag": self._pause_dag,
            "unpause_dag": self._unpause_dag,
            "backfill_dag": self._backfill_dag,
            "get_backfill": self._get_backfill,
            "clear_task": self._clear_task,
            "mark_task": self._mark_task,
            "schedule_preview": self._schedule_preview,
            "dag_run_history": self._dag_run_history,
        }
        # The layers above the API (imported here: they import this module).
        from ppacer.api.openapi import openapi_routes
        from ppacer.observability import observability_middleware, observability_routes
        from ppacer.scheduler.read_api import read_handlers
        from ppacer.ui.routes import ui_routes

        # Handlers of the read-only extensions (DAG and run lists, logs, executors).
        handlers.update(read_handlers(self))
        routes: list[BaseRoute] = [
            StarletteRoute(r.path, _guarded(handlers[r.name]), methods=[r.method], name=r.name)
            for r in ROUTES.values()
        ]
        routes += openapi_routes(self) + observability_routes(self) + ui_routes(self)
        return Starlette(
            routes=routes,
            middleware=observability_middleware(self),
            lifespan=self._lifespan,
            exception_handlers={HTTPException: _http_error},
        )

    def _pop_params(self, request: Request) -> tuple[float, str | None]:
        raw = request.query_params.get("wait_s", "0")
        try:
            wait_s = float(raw)
        except ValueError:
            raise InvalidInputError(f"wait_s: not a number: {raw!r}") from None
        if not 0 <= wait_s <= self.config.max_pop_wait_s:
            raise InvalidInputError(f"wait_s: must be between 0 and {self.config.max_pop_wait_s}")
        executor = request.query_params.get("executor") or None
        if executor is not None and len(executor) > 200:
            raise InvalidInputError("executor: name longer than 200 characters")
        return wait_s, executor

    async def _pop_task(self, request: Request) -> Response:
        ts = self._ts()
        wait_s, executor = self._pop_params(request)
        if self._state is not SchedulerState.RUNNING:
            return Response(status_code=204)
        item = await ts.pop(wait_s, executor)
        if item is None:
            return Response(status_code=204)
        if wait_s > 0 and await request.is_disconnected():
            # The poller gave up while waiting: keep the task for the next one.
            ts.requeue_front(item)
            return Response(status_code=204)
        return JSONResponse(ts.start_attempt(item).to_json())

    async def _pop_tasks(self, request: Request) -> Response:
        ts = self._ts()
        wait_s, executor = self._pop_params(request)
        raw = request.query_params.get("max", "1")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise InvalidInputError(f"max: must be a whole number from 1 to 1000, got {raw!r}")
        if self._state is not SchedulerState.RUNNING:
            return JSONResponse({"tasks": []})
        items = await ts.pop_many(wait_s, executor, int(raw))
        if items and wait_s > 0 and await request.is_disconnected():
            for item in reversed(items):
                ts.requeue_front(item)
            return JSONResponse({"tasks": []})
        return JSONResponse({"tasks": [ts.start_attempt(item).to_json() for item in items]})

    async def _executor_heartbeat(self, request: Request) -> Response:
        body = await _parse(request, HeartbeatInput)
        lost = self._ts().heartbeat(body.executor, body.leases, body.running, body.capacity)
        return JSONResponse({"lost": lost, "leaseTimeoutS": self.config.lease_timeout_s})

    async def _update_task_status(self, request: Request) -> Response:
        report = (await _parse(request, TaskStatusUpdate)).to_report()
        self._ts().apply_report(report)
        return Response(status_code=200)

    async def _update_task_statuses(self, request: Request) -> Response:
        body = await _parse(request, TaskStatusUpdates)
        reports: list[StatusReport | PpacerError] = []
        for i, update in enumerate(body.updates):
            try:
                reports.append(update.to_report())
            except InvalidInputError as exc:
                reports.append(InvalidInputError(f"updates.{i}.{exc}"))
        valid = [r for r in reports if isinstance(r, StatusReport)]
        outcomes = iter(self._ts().update_statuses(valid))
        results: list[dict[str, object]] = []
        for r in reports:
            error = r if isinstance(r, PpacerError) else next(outcomes)
            if error is None:
                results.append({"status": 200})
            else:
                results.append({"status": _error_status(error), "error": str(error)})
        return JSONResponse({"results": results})

    async def _trigger_dag_run(self, request: Request) -> Response:
        body = await _parse(request, DagRunTriggerInput)
        at = _exec_ts(body.execTs) if body.execTs is not None else None
        run = await self.trigger(body.dagId, body.params, at, _actor(request, body.actor))
        return JSONResponse({"runId": run.run_id, "dagId": run.dag_id, "execTs": run.exec_ts})

    async def _restart_dag_run(self, request: Request) -> Response:
        body = await _parse(request, DagRunRestartInput)
        number = self._ts().restart_run(
            body.dagId, _exec_ts(body.execTs), _actor(request, body.actor)
        )
        return JSONResponse(
            {"dagId": body.dagId, "execTs": format_ts(_exec_ts(body.execTs)), "restart": number}
        )

    async def _pause_dag(self, request: Request) -> Response:
        body = await _parse(request, DagInput)
        self.set_paused(body.dagId, True, _actor(request, body.actor))
        return JSONResponse({"dagId": body.dagId, "paused": True})

    async def _unpause_dag(self, request: Request) -> Response:
        body = await _parse(request, DagInput)
        self.set_paused(body.dagId, False, _actor(request, body.actor))
        return JSONResponse({"dagId": body.dagId, "paused": False})

    async def _backfill_dag(self, request: Request) -> Response:
        body = await _parse(request, BackfillInput)
        assert self.backfiller is not None
        row = self.backfiller.create(
            body.dagId,
            _exec_ts(body.from_, "from"),
            _exec_ts(body.to, "to"),
            body.maxActiveRuns,
            _actor(request, body.actor),
        )
        return JSONResponse(_backfill_json(row))

    async def _get_backfill(self, request: Request) -> Response:
        backfill_id = _int_param(request, "backfillId", minimum=1)
        with self.engine.connect() as conn:
            row = controls_db.read_backfill(conn, backfill_id)
            run_ids = controls_db.read_backfill_run_ids(conn, backfill_id) if row else []
        if row is None:
            raise NotFoundError(f"backfillId: no backfill {backfill_id}")
        return JSONResponse({**_backfill_json(row), "runIds": run_ids})

    async def _clear_task(self, request: Request) -> Response:
        body = await _parse(request, TaskActionInput)
        cleared = self._ts().clear_task(
            body.dagId, _exec_ts(body.execTs), body.taskId, _actor(request, body.actor)
        )
        return JSONResponse({"dagId": body.dagId, "execTs": body.execTs, "cleared": cleared})

    async def _mark_task(self, request: Request) -> Response:
        body = await _parse(request, TaskMarkInput)
        status = _task_status(body.status)
        self._ts().mark_task(
            body.dagId, _exec_ts(body.execTs), body.taskId, status, _actor(request, body.actor)
        )
        return JSONResponse({"dagId": body.dagId, "taskId": body.taskId, "status": str(status)})

    async def _schedule_preview(self, request: Request) -> Response:
        raw = request.query_params.get("n", "10")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise InvalidInputError(f"n: must be a whole number from 1 to 1000, got {raw!r}")
        after_raw = request.query_params.get("after")
        after = _exec_ts(after_raw, "after") if after_raw else None
        dag_id = request.path_params["dagId"]
        return JSONResponse(
            {"dagId": dag_id, "points": self.schedule_preview(dag_id, int(raw), after)}
        )

    async def _dag_run_history(self, request: Request) -> Response:
        run_id = _int_param(request, "runId", minimum=1)
        page = parse_params(request, PageQuery)
        with self.engine.connect() as conn:
            if runs_db.read_dag_run(conn, run_id) is None:
                raise NotFoundError(f"runId: no DAG run {run_id}")
            events = controls_db.read_run_events(conn, run_id)
        return JSONResponse(
            {
                "items": [
                    {
                        "insertTs": e.insert_ts,
                        "action": e.action,
                        "taskId": e.task_id,
                        "actor": e.actor,
                        "detail": e.detail,
                    }
                    for e in events[page.offset : page.offset + page.limit]
                ],
                "total": len(events),
                "limit": page.limit,
                "offset": page.offset,
            }
        )

    async def _get_state(self, _request: Request) -> Response:
        return JSONResponse({"state": str(self._state)})

    async def _ui_stats(self, _request: Request) -> Response:
        return JSONResponse(ui_data.dagrun_stats(self))

    async def _ui_latest(self, request: Request) -> Response:
        n = _int_param(request, "n", minimum=0)
        return JSONResponse(ui_data.dagrun_latest(self, n))

    async def _ui_details(self, request: Request) -> Response:
        run_id = _int_param(request, "runId", minimum=1)
        return JSONResponse(ui_data.dagrun_details(self, run_id))

    async def _ui_task_details(self, request: Request) -> Response:
        run_id = _int_param(request, "runId", minimum=1)
        retry = _int_param(request, "retry", minimum=0)
        task_id = request.path_params["taskId"]
        return JSONResponse(ui_data.dagrun_task_details(self, run_id, task_id, retry))

    def _ts(self) -> TaskScheduler:
        if self.task_scheduler is None:
            raise PpacerError("scheduler not started")
        return self.task_scheduler


async def _http_error(_request: Request, exc: Exception) -> Response:
    """Unknown paths and methods get the API's error shape too."""
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail)


def _exec_ts(text: str, field: str = "execTs") -> datetime:
    try:
        return parse_ts(text)
    except ValueError as exc:
        raise InvalidInputError(f"{field}: {exc}") from None


def _error_status(error: PpacerError) -> int:
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ConflictError):
        return 409
    return 400


def _task_status(text: str) -> TaskStatus:
    try:
        return TaskStatus(text)
    except ValueError:
        raise InvalidInputError(f"status: unknown task status {text!r}") from None


def _actor(request: Request, given: str | None) -> str:
    """Who asks: the body's ``actor``, else the ``X-Ppacer-Actor`` header, else "api"."""
    return given or request.headers.get("x-ppacer-actor") or "api"


def _backfill_json(row: controls_db.BackfillRow) -> dict[str, Any]:
    return {
        "backfillId": row.backfill_id,
        "dagId": row.dag_id,
        "from": row.from_ts,
        "to": row.to_ts,
        "maxActiveRuns": row.max_active_runs,
        "nextTs": row.next_ts,
        "status": row.status,
        "insertTs": row.insert_ts,
        "updateTs": row.update_ts,
        "actor": row.actor,
    }


def _int_param(request: Request, name: str, *, minimum: int) -> int:
    raw = request.path_params[name]
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInputError(f"{name}: not an integer: {raw!r}") from None
    if value < minimum:
        raise InvalidInputError(f"{name}: must be >= {minimum}, got {value}")
    if value > 2**63 - 1:  # the databases' integer range
        raise InvalidInputError(f"{name}: must be <= {2**63 - 1}, got {value}")
    return value


async def _parse(request: Request, model: type[_M]) -> _M:
    raw = await request.body()
    try:
        data = loads_strict(raw)
    except JsonInputError as exc:
        raise InvalidInputError(str(exc) if exc.field else f"body: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInputError("body: expected a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(describe_validation_error(exc), validation_detail(exc)) from None


def _guarded(handler: Handler) -> Handler:
    """Map ppacer's errors to 4xx answers; anything else: logged, 500, no traceback."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except InvalidInputError as exc:
            return error_response(400, str(exc), exc.detail)
        except NotFoundError as exc:
            return error_response(404, str(exc))
        except ConflictError as exc:
            return error_response(409, str(exc))
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            return error_response(500, "internal error; see the scheduler's log")

    return guarded
