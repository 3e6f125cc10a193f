"""The composition root: the only module that knows every part, and builds the ASGI app.

``create_app(scheduler)`` mounts the API (the route table through the one
adapter), the OpenAPI document and Swagger UI, metrics, health, the API token
check and the web UI around a :class:`~ppacer.scheduler.core.SchedulerCore`;
the app's lifespan runs the scheduler's loops. :class:`Scheduler` is the
public face of it all: the core plus ``start(dags)``, which returns the app,
as the original's ``Scheduler.Start`` returns its HTTP handler.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from ppacer.dag.dag import Registry
from ppacer.scheduler.core import SchedulerCore
from ppacer.server.adapter import api_routes, http_error
from ppacer.server.api import ApiHandlers
from ppacer.server.auth import BearerAuthMiddleware
from ppacer.server.docs import docs_routes
from ppacer.server.health import HealthCheck
from ppacer.server.metrics import RequestTimer, SchedulerMetrics
from ppacer.server.proxy import LeaderProxy
from ppacer.ui.routes import ui_routes

__all__ = ["Scheduler", "create_app"]


def create_app(scheduler: SchedulerCore, metrics: SchedulerMetrics | None = None) -> Starlette:
    """The ASGI app of a prepared scheduler: API, docs, metrics, health, token check and UI."""
    metrics = metrics if metrics is not None else SchedulerMetrics(scheduler)
    scheduler.add_task_observer(metrics.on_task_event)
    health = HealthCheck(scheduler, metrics)
    handlers = {
        **ApiHandlers(scheduler).by_name(),
        "healthz": health.endpoint,
        "metrics": metrics.endpoint,
    }
    routes: list[BaseRoute] = [
        *api_routes(handlers, scheduler.config.max_request_bytes, LeaderProxy(scheduler))
    ]
    routes += docs_routes(scheduler.config)
    routes += ui_routes(scheduler)
    middleware = [Middleware(RequestTimer, metrics=metrics)]
    if scheduler.config.api_token:
        middleware.append(Middleware(BearerAuthMiddleware, token=scheduler.config.api_token))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with scheduler.running():
            yield

    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
    )


class Scheduler(SchedulerCore):
    """The heart of ppacer: watches schedules, schedules tasks, serves the HTTP API and UI.

    ``start(registry)`` syncs the registry with the database, recovers
    unfinished DAG runs and returns the ASGI app; the app's lifespan runs the
    DAG-run watcher and the task scheduler. There is one Scheduler per
    database; any number of executors talk to it over HTTP.
    """

    app: Starlette | None = None
    #: The scheduler's Prometheus metrics (set by :meth:`start`).
    metrics: SchedulerMetrics | None = None

    def start(self, registry: Registry) -> Starlette:
        """Sync ``registry`` with the database, recover unfinished runs, return the ASGI app."""
        self.prepare(registry)
        self.metrics = SchedulerMetrics(self)
        self.app = create_app(self, self.metrics)
        return self.app
