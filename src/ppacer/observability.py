"""Metrics (``/metrics``), health (``/healthz``), API token checks and JSON log lines.

**Metrics** are Prometheus text, one registry per scheduler. Counters and
histograms are fed as things happen (task status changes through
``TaskScheduler.observers``, HTTP requests through the middleware, the event
loop's lag by a small ticker); gauges (runs and tasks by status, queue
lengths, executors) are read when scraped.

**Health**: 200 ``{"status": "ok"}`` when the databases answer, the
scheduler's loops run and its event loop is responsive; 503 naming the failed
check otherwise.

**Token**: with ``Config.api_token`` set, every API request must carry
``Authorization: Bearer <token>``; ``/healthz``, the API docs and the web UI's
pages (which have their own login) are exempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ppacer.dag.status import DagRunStatus, SchedulerState, TaskStatus
from ppacer.db import dagruns as runs_db
from ppacer.db import dagruntasks as tasks_db

if TYPE_CHECKING:
    from ppacer.scheduler.server import Scheduler
    from ppacer.scheduler.task_scheduler import TaskEvent

__all__ = [
    "BearerAuthMiddleware",
    "JsonLogFormatter",
    "SchedulerMetrics",
    "is_public_path",
    "observability_middleware",
    "observability_routes",
]

log = logging.getLogger("ppacer.scheduler")

# How often the ticker measures the event loop's lag, in seconds.
_LAG_TICK_S = 0.5
# The loop counts as stuck when the ticker has not run for this long, in seconds.
_STUCK_AFTER_S = 10.0
# Longest a health check waits for a database, in seconds.
_DB_CHECK_TIMEOUT_S = 5.0
_TASK_BUCKETS_S = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600)
_HTTP_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30)
_LAG_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)


def is_public_path(path: str) -> bool:
    """Whether ``path`` is served without the API token.

    The web UI's pages have a login of their own; its ``/ui/dagrun/...`` JSON
    endpoints are the original's API and need the token like the rest.
    """
    if path in ("/", "/healthz", "/docs", "/openapi.json") or path.startswith("/docs/"):
        return True
    return (path == "/ui" or path.startswith("/ui/")) and not path.startswith("/ui/dagrun/")


class SchedulerMetrics(Collector):
    """The Prometheus metrics of one scheduler (its own registry)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.registry = CollectorRegistry()
        self.task_changes = Counter(
            "ppacer_task_status_changes",
            "Task attempt status changes, by new status",
            ["status"],
            registry=self.registry,
        )
        self.task_duration = Histogram(
            "ppacer_task_duration_seconds",
            "Task attempts from RUNNING to a final status, by DAG and final status",
            ["dag_id", "status"],
            buckets=_TASK_BUCKETS_S,
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "ppacer_http_request_duration_seconds",
            "HTTP requests by method, route template and status code (long polls included)",
            ["method", "route", "status"],
            buckets=_HTTP_BUCKETS_S,
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "ppacer_scheduler_loop_lag_seconds",
            "How late the scheduler's event loop ran a timer (a busy loop is a slow scheduler)",
            buckets=_LAG_BUCKETS_S,
            registry=self.registry,
        )
        self.registry.register(self)
        # Start of each RUNNING attempt, to time it when it ends.
        self._started: dict[tuple[str, str, str, int], datetime] = {}
        self._http_children: dict[tuple[str, str, int], Any] = {}
        # Read by collect(); refreshed by scrape() just before rendering.
        self._db_counts: tuple[dict[str, int], dict[str, int]] = ({}, {})
        self.last_lag_s = 0.0
        self.last_tick = time.monotonic()

    # ------------------------------------------------------------------ feeding

    def on_task_event(self, event: TaskEvent) -> None:
        """A task attempt's status changed (a ``TaskScheduler`` observer)."""
        self.task_changes.labels(str(event.status)).inc()
        key = (event.dag_id, event.exec_ts, event.task_id, event.retry)
        if event.status is TaskStatus.RUNNING:
            self._started[key] = event.at
            return
        if event.status.is_terminal or event.status is TaskStatus.FAILED_PENDING_RETRY:
            started = self._started.pop(key, None)
            if started is not None:
                seconds = max(0.0, (event.at - started).total_seconds())
                self.task_duration.labels(event.dag_id, str(event.status)).observe(seconds)

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        """One HTTP request was answered."""
        key = (method, route, status)
        child = self._http_children.get(key)
        if child is None:
            child = self._http_children[key] = self.http_duration.labels(method, route, status)
        child.observe(seconds)

    async def watch_loop(self) -> None:
        """Measure the event loop's lag until cancelled (run on the scheduler's loop)."""
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(_LAG_TICK_S)
            self.last_lag_s = max(0.0, loop.time() - start - _LAG_TICK_S)
            self.last_tick = time.monotonic()
            self.loop_lag.observe(self.last_lag_s)

    # ------------------------------------------------------------------ scraping

    def _read_db_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        with self.scheduler.engine.connect() as conn:
            return runs_db.count_dag_runs_by_status(conn), tasks_db.count_tasks_by_status(conn)

    async def scrape(self) -> bytes:
        """The metrics in Prometheus text form (the database is read off the loop)."""
        self._db_counts = await asyncio.to_thread(self._read_db_counts)
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        """Gauges read at scrape time (the registry calls this)."""
        runs, tasks = self._db_counts
        by_run = GaugeMetricFamily("ppacer_dag_runs", "DAG runs by status", labels=["status"])
        for status in DagRunStatus:
            by_run.add_metric([str(status)], runs.get(str(status), 0))
        yield by_run
        by_task = GaugeMetricFamily(
            "ppacer_task_attempts", "Task attempts by status", labels=["status"]
        )
        for task_status in TaskStatus:
            by_task.add_metric([str(task_status)], tasks.get(str(task_status), 0))
        yield by_task
        state = GaugeMetricFamily(
            "ppacer_scheduler_state", "1 for the scheduler's current state", labels=["state"]
        )
        for s in SchedulerState:
            state.add_metric([str(s)], 1.0 if self.scheduler.state is s else 0.0)
        yield state
        ts = self.scheduler.task_scheduler
        watcher = self.scheduler.watcher
        stats = ts.stats() if ts is not None else {}
        queues = {
            "ppacer_ready_tasks": ("Task attempts ready, waiting for an executor", "ready"),
            "ppacer_active_dag_runs": ("DAG runs being scheduled", "active_runs"),
            "ppacer_queued_dag_runs": ("Runs waiting under max_active_runs", "queued_runs"),
            "ppacer_waiting_polls": ("Executor long polls waiting for a task", "waiters"),
        }
        for name, (doc, key) in queues.items():
            yield GaugeMetricFamily(name, doc, value=stats.get(key, 0))
        yield GaugeMetricFamily(
            "ppacer_dag_run_queue_length",
            "New DAG runs waiting for the task scheduler",
            value=watcher.queue.qsize() if watcher is not None else 0,
        )
        yield GaugeMetricFamily(
            "ppacer_task_leases", "Task attempts leased to executors", value=_leases(ts)
        )
        yield from self._executor_metrics()
        yield GaugeMetricFamily(
            "ppacer_scheduler_loop_lag_last_seconds",
            "The event loop's latest measured lag",
            value=self.last_lag_s,
        )

    def _executor_metrics(self) -> Iterator[Metric]:
        ts = self.scheduler.task_scheduler
        executors = list(getattr(ts, "executors", {}).values()) if ts is not None else []
        now = self.scheduler.clock.now()
        seen = GaugeMetricFamily(
            "ppacer_executor_last_heartbeat_age_seconds",
            "Seconds since each executor was last heard from (poll or heartbeat)",
            labels=["executor"],
        )
        running = GaugeMetricFamily(
            "ppacer_executor_running_tasks", "Tasks each executor runs", labels=["executor"]
        )
        capacity = GaugeMetricFamily(
            "ppacer_executor_capacity", "Tasks each executor can run at once", labels=["executor"]
        )
        for e in executors:
            seen.add_metric([e.name], max(0.0, (now - e.last_seen).total_seconds()))
            running.add_metric([e.name], e.running)
            if e.capacity is not None:
                capacity.add_metric([e.name], e.capacity)
        yield GaugeMetricFamily(
            "ppacer_executors", "Executors the scheduler has heard from", value=len(executors)
        )
        yield seen
        yield running
        yield capacity


def _leases(ts: Any) -> int:
    leases = getattr(ts, "leases", None)
    return len(leases) if leases is not None else 0


class ObservabilityMiddleware:
    """Times every HTTP request; runs the loop-lag ticker for the app's lifetime."""

    def __init__(self, app: ASGIApp, metrics: SchedulerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            ticker = asyncio.create_task(self.metrics.watch_loop(), name="ppacer-loop-lag")
            try:
                await self.app(scope, receive, send)
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_http(
                scope["method"], template, status, time.perf_counter() - started
            )


class BearerAuthMiddleware:
    """Refuses API requests without ``Authorization: Bearer <token>`` (401, the error shape)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        reason = "wrong API token" if given else "missing API token"
        response = JSONResponse(
            {"error": f"unauthorized: {reason}", "detail": "send Authorization: Bearer <token>"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)


def _metrics_of(scheduler: Scheduler) -> SchedulerMetrics:
    """The scheduler's metrics, created (and subscribed to task events) on first use."""
    metrics: SchedulerMetrics | None = getattr(scheduler, "metrics", None)
    if metrics is None:
        metrics = SchedulerMetrics(scheduler)
        scheduler.metrics = metrics  # type: ignore[attr-defined]
        if scheduler.task_scheduler is not None:
            scheduler.task_scheduler.observers.append(metrics.on_task_event)
    return metrics


async def _check_db(engine: Engine) -> str:
    def ping() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(asyncio.to_thread(ping), _DB_CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {_DB_CHECK_TIMEOUT_S:g}s"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def observability_routes(scheduler: Scheduler) -> list[BaseRoute]:
    """``/metrics`` and ``/healthz``."""
    metrics = _metrics_of(scheduler)

    async def metrics_endpoint(_request: Request) -> Response:
        return Response(await metrics.scrape(), media_type=CONTENT_TYPE_LATEST)

    async def health(_request: Request) -> Response:
        checks: dict[str, Any] = {"db": await _check_db(scheduler.engine)}
        if scheduler.logs_engine is not None:
            checks["logsDb"] = await _check_db(scheduler.logs_engine)
        loops = {}
        for task in scheduler._tasks:
            if not task.done():
                loops[task.get_name()] = "ok"
            elif task.cancelled():
                loops[task.get_name()] = "stopped"
            else:
                loops[task.get_name()] = f"crashed: {task.exception()!r}"
        checks["loops"] = loops
        stalled_s = time.monotonic() - metrics.last_tick
        checks["eventLoop"] = (
            "ok" if stalled_s < _STUCK_AFTER_S else f"no tick for {stalled_s:.1f}s"
        )
        checks["eventLoopLagS"] = round(metrics.last_lag_s, 6)
        checks["state"] = str(scheduler.state)
        healthy = (
            checks["db"] == "ok"
            and checks.get("logsDb", "ok") == "ok"
            and bool(loops)
            and all(v == "ok" for v in loops.values())
            and checks["eventLoop"] == "ok"
            and scheduler.state is SchedulerState.RUNNING
        )
        return JSONResponse(
            {"status": "ok" if healthy else "unhealthy", "checks": checks},
            status_code=200 if healthy else 503,
        )

    return [
        Route("/metrics", metrics_endpoint, methods=["GET"], name="metrics"),
        Route("/healthz", health, methods=["GET"], name="healthz"),
    ]


def observability_middleware(scheduler: Scheduler) -> list[Middleware]:
    """ASGI middleware around the whole app: request timing, then the API token check."""
    middleware = [Middleware(ObservabilityMiddleware, metrics=_metrics_of(scheduler))]
    if scheduler.config.api_token:
        middleware.append(Middleware(BearerAuthMiddleware, token=scheduler.config.api_token))
    return middleware


# ---------------------------------------------------------------------------- JSON logs

# Fields the scheduler writes into its messages ("... dagId=x execTs=y runId=3").
_MESSAGE_FIELDS = re.compile(r"\b(dagId|execTs|taskId|runId|retry)=(\S+)")
_FIELD_NAMES = {
    "dagId": "dag_id",
    "execTs": "exec_ts",
    "taskId": "task_id",
    "runId": "run_id",
    "retry": "retry",
}
# Record attributes carrying a task attempt's identity (see ppacer.dag.task.task_logger).
_RECORD_FIELDS = {
    "ppacer_dag_id": "dag_id",
    "ppacer_exec_ts": "exec_ts",
    "ppacer_task_id": "task_id",
    "ppacer_retry": "retry",
    "ppacer_run_id": "run_id",
    "dag_id": "dag_id",
    "exec_ts": "exec_ts",
    "task_id": "task_id",
    "run_id": "run_id",
}


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, and dag_id/run_id/task_id if known.

    The identity comes from the record (task loggers carry it) or, for the
    scheduler's own lines, from ``dagId=... runId=...`` in the message.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a JSON line."""
        message = record.getMessage()
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        for match in _MESSAGE_FIELDS.finditer(message):
            value: Any = match.group(2)
            if match.group(1) in ("runId", "retry") and value.isdigit():
                value = int(value)
            data[_FIELD_NAMES[match.group(1)]] = value
        for attr, key in _RECORD_FIELDS.items():
            value = getattr(record, attr, None)
            if value is not None:
                data[key] = value
        attrs = getattr(record, "ppacer_attrs", None)
        if attrs:
            data["attributes"] = attrs
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)
