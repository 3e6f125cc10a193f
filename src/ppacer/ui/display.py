"""How the UI shows things: times in the scheduler's zone, durations, schedules in words."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup

from ppacer.dag.cron import CronSchedule
from ppacer.dag.schedule import FixedSchedule, Schedule, UnionSchedule
from ppacer.timeutils import parse_ts

__all__ = [
    "badge",
    "describe_schedule",
    "format_duration_s",
    "progress_bar",
    "relative_time",
    "status_class",
    "time_tag",
    "when_tag",
]

_MACROS = {
    "@hourly": "every hour, on the hour",
    "@daily": "every day at midnight",
    "@midnight": "every day at midnight",
    "@weekly": "every Sunday at midnight",
    "@monthly": "on the 1st of every month at midnight",
    "@yearly": "every 1 January at midnight",
    "@annually": "every 1 January at midnight",
}
_DAY_NAMES = {
    "0": "Sunday",
    "1": "Monday",
    "2": "Tuesday",
    "3": "Wednesday",
    "4": "Thursday",
    "5": "Friday",
    "6": "Saturday",
    "7": "Sunday",
    "SUN": "Sunday",
    "MON": "Monday",
    "TUE": "Tuesday",
    "WED": "Wednesday",
    "THU": "Thursday",
    "FRI": "Friday",
    "SAT": "Saturday",
}


@functools.lru_cache(maxsize=64)
def status_class(status: object) -> str:
    """CSS class of a run or task status: ``st-success``, ``st-failed``, ..."""
    return "st-" + str(status).lower().replace("_", "-")


@functools.lru_cache(maxsize=64)
def badge(status: object) -> Markup:
    """A status as a coloured label: ``<span class="badge st-failed">failed</span>``.

    Cached: a page of 1,000 runs shows a handful of distinct statuses.
    """
    text = str(status)
    return Markup('<span class="badge {}">{}</span>').format(
        status_class(text), text.replace("_", " ").lower()
    )


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


def _every(interval: timedelta) -> str:
    seconds = interval.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {seconds:g} seconds"


def _clock(minute: str, hour: str) -> str | None:
    if minute.isdigit() and hour.isdigit():
        return f"{int(hour):02d}:{int(minute):02d}"
    return None


def _days(dow: str) -> str | None:
    upper = dow.upper()
    if upper in ("1-5", "MON-FRI"):
        return "on weekdays"
    if upper in ("0,6", "6,0", "SAT,SUN", "SUN,SAT"):
        return "at weekends"
    parts = upper.split(",")
    if all(p in _DAY_NAMES for p in parts):
        return "on " + ", ".join(_DAY_NAMES[p] for p in parts)
    return None


def _describe_cron(expr: str) -> str:
    macro = _MACROS.get(expr.lower())
    if macro is not None:
        return macro
    fields = expr.split()
    if len(fields) != 5:
        return f"cron {expr}"
    minute, hour, dom, month, dow = fields
    if dom == "*" and month == "*":
        if minute.startswith("*/") and hour == "*" and dow == "*" and minute[2:].isdigit():
            return _every(timedelta(minutes=int(minute[2:])))
        if minute == "*" and hour == "*" and dow == "*":
            return "every minute"
        if minute.isdigit() and hour == "*" and dow == "*":
            return f"every hour at :{int(minute):02d}"
        at = _clock(minute, hour)
        if at is not None:
            days = "every day" if dow == "*" else _days(dow)
            if days is not None:
                return f"{days} at {at}"
    if dom.isdigit() and month == "*" and dow == "*":
        at = _clock(minute, hour)
        if at is not None:
            return f"on day {int(dom)} of every month at {at}"
    return f"cron {expr}"


def describe_schedule(schedule: Schedule | None, default_tz: str) -> str:
    """A schedule in words: ``every 10 seconds``, ``on weekdays at 09:30 (Europe/Warsaw)``."""
    if schedule is None:
        return "manual only"
    if isinstance(schedule, FixedSchedule):
        return _every(schedule.interval)
    if isinstance(schedule, CronSchedule):
        return f"{_describe_cron(schedule.expr)} ({schedule.tz or default_tz})"
    if isinstance(schedule, UnionSchedule):
        return " and ".join(describe_schedule(s, default_tz) for s in schedule.schedules)
    return str(schedule)


#: A segment of a run's completion bar: status, x and width (% of the bar), task count.
BarSegment = tuple[str, float, float, int]


@functools.lru_cache(maxsize=256)
def progress_bar(segments: tuple[BarSegment, ...], done: int, task_count: int) -> Markup:
    """A run's tasks by status as a stacked SVG bar, ``done`` of ``task_count`` finished.

    Cached: on a page of runs most rows of a DAG have the same bar, so a page of
    1,000 runs builds a handful of bars instead of a thousand.
    """
    rects = Markup("").join(
        Markup(
            '<rect class="{cls}" x="{x}" y="0" width="{w}" height="8">'
            "<title>{n} {status}</title></rect>"
        ).format(cls=status_class(status), x=x, w=w, n=n, status=status)
        for status, x, w, n in segments
    )
    return Markup(
        '<svg class="bar" viewBox="0 0 100 8" preserveAspectRatio="none" role="img"'
        ' aria-label="{done} of {total} tasks finished">'
        '<rect class="bar-bg" x="0" y="0" width="100" height="8"></rect>{rects}</svg>'
    ).format(done=done, total=task_count, rects=rects)


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
