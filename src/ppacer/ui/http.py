"""What every UI handler shares: the page answer, the handlers' base, safe redirects.

A handler returns a :class:`Page` (a template and its context) or a ready
response; :mod:`ppacer.ui.routes` renders it with the security headers.
Query parameters and forms are read by :mod:`ppacer.ui.inputs` (its names
are importable from here too).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response

from ppacer.scheduler.core import SchedulerCore
from ppacer.ui.inputs import MAX_FORM_BYTES, int_query, parse_when, read_form, when_query

__all__ = [
    "MAX_FORM_BYTES",
    "UI_ACTOR",
    "Page",
    "PageGroup",
    "PageHandler",
    "client_host",
    "int_query",
    "parse_when",
    "pick",
    "read_form",
    "safe_next",
    "when_query",
]

#: Who UI actions are recorded as (``dagrunevents.Actor``).
UI_ACTOR = "ui"


class Page:
    """A handler's answer: a template and its context."""

    __slots__ = ("context", "headers", "http_status", "template")

    def __init__(
        self,
        template: str,
        http_status: int = 200,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> None:
        self.template = template
        self.http_status = http_status
        self.headers = headers or {}
        self.context = context


PageHandler = Callable[[Request], Awaitable["Page | Response"]]


class PageGroup:
    """The handlers of one page (or a few close ones) of one scheduler's UI.

    Handlers read the database in worker threads (``asyncio.to_thread``) and
    what lives in the scheduler's memory (queues, next runs) on the event loop.
    """

    def __init__(self, scheduler: SchedulerCore) -> None:
        self.scheduler = scheduler
        self.zone = ZoneInfo(scheduler.config.timezone)

    @property
    def secrets(self) -> list[str]:
        """What log text shown must never contain: the scheduler's API token."""
        token = self.scheduler.config.api_token
        return [token] if token else []


def pick(request: Request, full: str, partial: str, fragment: str = "live") -> str:
    """The full page, or only its fragment when htmx asks for it (``?fragment=...``)."""
    return partial if request.query_params.get("fragment") == fragment else full


def safe_next(value: str | None) -> str:
    """Where to go after login: only a path of this UI (no open redirect)."""
    if value and value.startswith("/ui") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui"


def client_host(request: Request) -> str:
    """The client's address, for log lines."""
    return request.client.host if request.client is not None else "?"
