"""Metrics and health endpoints (filled in by the CLI/API/observability issue)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.middleware import Middleware
from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from ppacer.scheduler.server import Scheduler

__all__ = ["observability_middleware", "observability_routes"]


def observability_routes(scheduler: Scheduler) -> list[BaseRoute]:
    """``/metrics`` and ``/healthz``."""
    del scheduler
    return []


def observability_middleware(scheduler: Scheduler) -> list[Middleware]:
    """ASGI middleware wrapped around the whole app (e.g. request latency)."""
    del scheduler
    return []
