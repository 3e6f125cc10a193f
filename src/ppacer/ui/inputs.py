"""What UI handlers read from a request: bounded query parameters, typed times, forms.

A query parameter is read with :func:`int_query` or :func:`when_query`; a bad
value is an :class:`~ppacer.errors.InvalidInputError`, which the UI answers
with a 400 page naming the parameter. A time a person typed is read in the
UI's zone (:func:`parse_when`). A form body is read up to
:data:`MAX_FORM_BYTES`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from starlette.requests import Request

from ppacer.errors import InvalidInputError
from ppacer.timeutils import parse_ts

__all__ = ["MAX_FORM_BYTES", "int_query", "parse_when", "read_form", "when_query"]

#: The largest form body a UI action reads (a larger one is refused: 413).
MAX_FORM_BYTES = 256 * 1024


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
