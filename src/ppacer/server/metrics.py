"""Prometheus metrics (``/metrics``), the HTTP request timer and the event loop's lag ticker.

One registry per scheduler. Counters and histograms are fed as things happen
(task status changes through the scheduler's task observers, HTTP requests
through :class:`RequestTimer`, the event loop's lag by a small ticker); gauges
(runs and tasks by status, queue lengths, executors) are read when scraped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ppacer.dag.status import DagRunStatus, SchedulerState, TaskStatus
from ppacer.scheduler.core import SchedulerCore
from ppacer.scheduler.task_scheduler import TaskEvent
from ppacer.server.adapter import Call

__all__ = ["LAG_TICK_S", "RequestTimer", "SchedulerMetrics"]

#: How often the ticker measures the event loop's lag, in seconds.
LAG_TICK_S = 0.5
_TASK_BUCKETS_S = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600)
_HTTP_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30)
_LAG_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)


class SchedulerMetrics(Collector):
    """The Prometheus metrics of one scheduler (its own registry)."""

    def __init__(self, scheduler: SchedulerCore) -> None:
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
        # Labelled children looked up once (labels() costs more than the increment).
        self._change_children: dict[TaskStatus, Any] = {}
        # Read by collect(); refreshed by scrape() just before rendering.
        self._db_counts: tuple[dict[str, int], dict[str, int]] = ({}, {})
        #: The event loop's latest lag, and when the ticker last ran (monotonic seconds).
        self.last_lag_s = 0.0
        self.last_tick = time.monotonic()

    # ------------------------------------------------------------------ feeding

    def on_task_event(self, event: TaskEvent) -> None:
        """A task attempt's status changed (a task observer of the scheduler)."""
        changes = self._change_children.get(event.status)
        if changes is None:
            changes = self._change_children[event.status] = self.task_changes.labels(
                str(event.status)
            )
        changes.inc()
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
            await asyncio.sleep(LAG_TICK_S)
            self.last_lag_s = max(0.0, loop.time() - start - LAG_TICK_S)
            self.last_tick = time.monotonic()
            self.loop_lag.observe(self.last_lag_s)

    # ------------------------------------------------------------------ scraping

    async def endpoint(self, _call: Call[None, None, None]) -> Response:
        """``GET /metrics``: the metrics as Prometheus text (the database is read off the loop)."""
        self._db_counts = await asyncio.to_thread(self.scheduler.reads.status_counts)
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

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
        stats = self.scheduler.stats()
        gauges = {
            "ppacer_ready_tasks": ("Task attempts ready, waiting for an executor", stats.ready),
            "ppacer_active_dag_runs": ("DAG runs being scheduled", stats.active_runs),
            "ppacer_queued_dag_runs": ("Runs waiting under max_active_runs", stats.queued_runs),
            "ppacer_waiting_polls": ("Executor long polls waiting for a task", stats.waiters),
            "ppacer_dag_run_queue_length": (
                "New DAG runs waiting for the task scheduler",
                stats.dag_run_queue,
            ),
            "ppacer_task_leases": ("Task attempts leased to executors", stats.leases),
            "ppacer_scheduler_leader": (
                "1 while this scheduler leads its database, 0 while it stands by",
                0 if self.scheduler.is_standby else 1,
            ),
        }
        for name, (doc, value) in gauges.items():
            yield GaugeMetricFamily(name, doc, value=value)
        waiting = GaugeMetricFamily(
            "ppacer_waiting_tasks",
            "Queued task attempts no connected executor may take (queue or code version)",
            labels=["queue"],
        )
        for queue, count in sorted(self.scheduler.waiting_by_queue().items()):
            waiting.add_metric([queue], count)
        yield waiting
        yield from self._executor_metrics()
        yield GaugeMetricFamily(
            "ppacer_scheduler_loop_lag_last_seconds",
            "The event loop's latest measured lag",
            value=self.last_lag_s,
        )
        yield CounterMetricFamily(
            "ppacer_task_log_lines_dropped",
            "Task log lines the logs DB could not store (it was full), since the scheduler started",
            value=self.scheduler.log_drops.total,
        )

    def _executor_metrics(self) -> Iterator[Metric]:
        executors = self.scheduler.executors()
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


class RequestTimer:
    """ASGI middleware: times every HTTP request; runs the loop-lag ticker for the app's life."""

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
