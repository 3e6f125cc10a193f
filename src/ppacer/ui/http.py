"""What every UI handler shares: the page answer, query and form parsing, safe redirects.

A handler returns a :class:`Page` (a template and its context) or a ready
response; :mod:`ppacer.ui.routes` renders it with the security headers.
Query parameters are read with :func:`int_query` / :func:`when_query` (a bad
value is an :class:`~ppacer.errors.InvalidInputError`: a 400 page naming it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response

from ppacer.errors import InvalidInputError
from ppacer.scheduler.core import SchedulerCore
from ppacer.timeutils import parse_ts

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
MAX_FORM_BYTES = 256 * 1024


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


def int_query(
    request: Request, name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    """A whole-number query parameter within bounds (``default`` when absent or empty)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInputError(f"{name}: not a whole number: {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and {maximum}" if maximum is not None else ""
        raise InvalidInputError(f"{name}: must be between {minimum}{upper}, got {value}")
    return value


def parse_when(text: str, zone: ZoneInfo, *, end_of_day: bool = False) -> datetime:
    """A time a person typed, as an aware UTC datetime.

    A date (``2024-03-11``) or a date and time without a zone
    (``2024-03-11 12:00``, ``2024-03-11T12:00:30``: what browsers' date and time
    inputs send) is in the UI's zone; anything with a zone or offset is read as
    the API reads timestamps. A date with ``end_of_day`` is the start of the next
    day (for exclusive upper bounds).
    """
    raw = text.strip()
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        pass
    else:
        start = datetime.combine(day + timedelta(days=1 if end_of_day else 0), time(), zone)
        return start.astimezone(UTC)
    try:  # ISO 8601 as Python reads it (with or without a zone; minutes without seconds)
        naive = datetime.fromisoformat(raw)
    except ValueError:  # the stored and the original's forms
        naive = None
    if naive is not None:
        return (naive if naive.tzinfo else naive.replace(tzinfo=zone)).astimezone(UTC)
    return parse_ts(raw)


def when_query(
    request: Request, name: str, zone: ZoneInfo, *, end_of_day: bool = False
) -> datetime | None:
    """A time query parameter (see :func:`parse_when`); None when absent or empty."""
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    try:
        return parse_when(raw, zone, end_of_day=end_of_day)
    except ValueError as exc:
        raise InvalidInputError(
            f"{name}: {exc} (a date 2024-03-11, a time 2024-03-11 12:00, or ISO 8601 "
            "2024-03-11T12:00Z)"
        ) from None


async def read_form(request: Request) -> dict[str, str] | None:
    """An url-encoded form body as a dict (first value of each field); None if too large."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return {}
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
