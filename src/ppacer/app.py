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
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import URLPath
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from ppacer.dag.dag import Registry
from ppacer.scheduler.core import SchedulerCore
from ppacer.server.adapter import api_routes, http_error
from ppacer.server.api import ApiHandlers
from ppacer.server.auth import BearerAuthMiddleware
from ppacer.server.docs import docs_routes
from ppacer.server.health import HealthCheck
from ppacer.server.metrics import RequestTimer, SchedulerMetrics
from ppacer.server.proxy import LeaderProxy

__all__ = ["LazyUi", "Scheduler", "create_app"]


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
    routes.append(LazyUi(scheduler))
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


class LazyUi(BaseRoute):
    """The web UI's routes (``/`` and ``/ui...``), built on the first request to one of
    them: its templates, Jinja2 and Pygments load then, so a scheduler whose UI nobody
    opens never pays for them, in start time or memory."""

    def __init__(self, scheduler: SchedulerCore) -> None:
        self.scheduler = scheduler
        self._routes: list[BaseRoute] | None = None

    def _ui_routes(self) -> list[BaseRoute]:
        if self._routes is None:
            from ppacer.ui.routes import ui_routes

            self._routes = ui_routes(self.scheduler)
        return self._routes

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path in ("/", "/ui") or path.startswith("/ui/")):
            return Match.NONE, {}
        partial: tuple[Match, Scope] | None = None
        for route in self._ui_routes():
            match, child = route.matches(scope)
            if match is Match.FULL:
                return match, {**child, _ROUTE_KEY: route}
            if match is Match.PARTIAL and partial is None:
                partial = (match, {**child, _ROUTE_KEY: route})
        return partial if partial is not None else (Match.NONE, {})

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope[_ROUTE_KEY].handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        for route in self._ui_routes():
            try:
                return route.url_path_for(name, **path_params)
            except NoMatchFound:
                pass
        raise NoMatchFound(name, path_params)


# Where LazyUi.matches leaves the UI route it matched, for its handle.
_ROUTE_KEY = "ppacer.ui_route"


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
