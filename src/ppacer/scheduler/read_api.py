"""Read-only API extensions: DAG and run lists, logs, executors (the CLI/API issue fills it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from ppacer.scheduler.server import Scheduler

__all__ = ["read_handlers"]

Handler = Callable[[Request], Awaitable[Response]]


def read_handlers(scheduler: Scheduler) -> dict[str, Handler]:
    """Handlers by route name (``ppacer.api.routes``) for the read-only extensions."""
    del scheduler
    return {}
