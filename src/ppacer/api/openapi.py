"""The OpenAPI document of the HTTP API and its interactive docs at /docs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from ppacer.scheduler.server import Scheduler

__all__ = ["openapi_routes"]


def openapi_routes(scheduler: Scheduler) -> list[BaseRoute]:
    """``/openapi.json`` and ``/docs``."""
    del scheduler
    return []
