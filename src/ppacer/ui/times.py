"""How the UI shows times and durations: times in the scheduler's zone, how long ago.

A time is a ``<time>`` element: the time in the zone, the UTC time on hover;
:func:`when_tag` adds how long ago, which ``static/ui.js`` keeps fresh.
Statuses (badges, completion bars) are :mod:`ppacer.ui.display`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from markupsafe import Markup

from ppacer.timeutils import parse_ts

__all__ = ["format_duration_s", "relative_time", "time_tag", "when_tag"]


def format_duration_s(seconds: float | None) -> str:
    """``0.42s``, ``12.3s``, ``4m 05s``, ``2h 03m``, ``3d 4h``; an empty string for None."""
    if seconds is None:
        return ""
    if seconds < 0:
        seconds = 0.0
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


#: Zones that are UTC itself: times shown in them need no conversion.
_UTC_ZONES = frozenset({"UTC", "Etc/UTC"})


def _naive_utc(value: str | datetime) -> datetime:
    """A stored timestamp (or an aware datetime) as a naive datetime in UTC."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    return parse_ts(value).replace(tzinfo=None)


def time_tag(value: str | datetime | None, zone: ZoneInfo, *, precise: bool = False) -> Markup:
    """A ``<time>``: the time in ``zone`` (with milliseconds if ``precise``), UTC on hover."""
    if value is None or value == "":
        return Markup("")
    naive = _naive_utc(value)
    # "YYYY-MM-DD HH:MM:SS.ffffff": a naive datetime's isoformat is the cheapest formatting
    # (several times faster than strftime or an aware datetime's isoformat).
    utc = naive.isoformat(" ", "microseconds")
    if zone.key in _UTC_ZONES:
        local = utc
    else:
        local = naive.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None).isoformat(" ")
        local = local if len(local) > 19 else local + ".000000"
    # As datetime.isoformat() of the aware time: no fraction when it is zero.
    iso = utc[:10] + "T" + (utc[11:19] if naive.microsecond == 0 else utc[11:]) + "+00:00"
    # Every part is datetime's own formatting (digits, "-", ":", ".", "+", "T", " "):
    # nothing to escape, so no Markup.format (which cost more than all the rest).
    return Markup(
        f'<time datetime="{iso}" title="{utc[:23]} UTC">'
        f"{local[:23] if precise else local[:19]}</time>"
    )


def relative_time(seconds: float) -> str:
    """How long ago (``seconds`` > 0) or ahead: ``just now``, ``3 min ago``, ``in 2 h``.

    ``static/ui.js`` words it the same way when it refreshes the text later.
    """
    ahead = seconds < 0
    s = abs(seconds)
    if s < 10:
        return "just now"
    if s < 60:
        text = f"{int(s)} s"
    elif s < 3600:
        text = f"{int(s // 60)} min"
    elif s < 86400:
        text = f"{int(s // 3600)} h"
    else:
        days = int(s // 86400)
        text = f"{days} day{'' if days == 1 else 's'}"
    return f"in {text}" if ahead else f"{text} ago"


def when_tag(value: str | datetime | None, zone: ZoneInfo, now: datetime) -> Markup:
    """A time in ``zone`` with the zone's name, UTC on hover, and how long ago beside it.

    ``<time datetime=... title="... UTC">2024-03-11 13:00:00 CET</time>
    <span class="rel" data-ts="...">3 min ago</span>``; the script refreshes the
    relative part while the page stays open.
    """
    if value is None or value == "":
        return Markup("")
    at = value.astimezone(UTC) if isinstance(value, datetime) else parse_ts(value)
    local = at.astimezone(zone)
    iso = at.isoformat()
    utc = at.replace(tzinfo=None).isoformat(" ", "milliseconds")
    shown = local.replace(tzinfo=None).isoformat(" ", "seconds")
    rel = relative_time((now - at).total_seconds())
    # Every part is datetime's own formatting or a zone name (letters, digits, +, -).
    return Markup(
        f'<time datetime="{iso}" title="{utc} UTC">{shown} {local.tzname()}</time> '
        f'<span class="rel" data-ts="{iso}">{rel}</span>'
    )
