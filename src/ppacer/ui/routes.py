"""Routes of the web UI (filled in by the web UI issue)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from ppacer.scheduler.server import Scheduler

__all__ = ["ui_routes"]


def ui_routes(scheduler: Scheduler) -> list[BaseRoute]:
    """The UI's routes, mounted by the scheduler's app next to the API."""
    del scheduler
    return []
