"""A schedule in words, the one wording the command line and the UI both show.

``describe_schedule`` takes a schedule object (what the UI has) or the text a
schedule stores as ``str(schedule)`` (what the API's ``schedule`` field and the
original's ``dags.Schedule`` column hold, and all a remote client has), so the
same DAG reads the same everywhere::

    FixedSchedule(start, timedelta(minutes=1))        every minute
    "FixedSchedule: 10s"                              every 10 seconds
    CronSchedule("*/15 9-17 * * MON-FRI", tz=...)     every 15 minutes from 09:00 to 17:59,
                                                      on weekdays (Europe/Warsaw)
    "Cron: 30 2 * * *"                                every day at 02:30
    None                                              manual only

A cron expression this module cannot put in words is shown as ``cron EXPR``;
a schedule of another kind by its ``str()``.
"""

from __future__ import annotations

import calendar
import re
from datetime import timedelta

from ppacer.dag.cron import MACROS, CronSchedule
from ppacer.dag.schedule import FixedSchedule, Schedule, UnionSchedule

__all__ = ["MANUAL_ONLY", "describe_cron", "describe_interval", "describe_schedule"]

#: What a DAG without a schedule (triggered runs only) is called.
MANUAL_ONLY = "manual only"

_DAY_NUMBERS = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
_DAY_NAMES = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_MONTH_NUMBERS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
# Units of a fixed interval in words, largest first, in microseconds.
_UNITS = (
    ("day", 86_400_000_000),
    ("hour", 3_600_000_000),
    ("minute", 60_000_000),
    ("second", 1_000_000),
    ("millisecond", 1_000),
)
# Go's Duration text, as stored for a FixedSchedule: 1h30m0s, 10s, 500ms, 1.5s.
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|\u00b5s|ns|h|m|s)")
_GO_UNIT_US = {"h": 3.6e9, "m": 6e7, "s": 1e6, "ms": 1e3, "us": 1.0, "\u00b5s": 1.0, "ns": 1e-3}
# A time of day is listed, not summarised, up to this many times a day.
_MAX_LISTED_TIMES = 6


def describe_schedule(schedule: Schedule | str | None, default_tz: str | None = None) -> str:
    """``schedule`` in words: ``every minute``, ``on weekdays at 09:30 (Europe/Warsaw)``.

    ``schedule`` is a schedule object or its stored text (``str(schedule)``,
    e.g. ``FixedSchedule: 1m0s`` or ``Cron: 30 2 * * * (Europe/Warsaw)``).
    A cron schedule names its zone: its own, else ``default_tz`` (the
    scheduler's ``Config.timezone``) when given. None or empty text is a
    DAG run only when triggered: ``manual only``.
    """
    if schedule is None or (isinstance(schedule, str) and not schedule.strip()):
        return MANUAL_ONLY
    if isinstance(schedule, str):
        return _describe_text(schedule.strip(), default_tz)
    if isinstance(schedule, FixedSchedule):
        return describe_interval(schedule.interval)
    if isinstance(schedule, CronSchedule):
        return _with_zone(describe_cron(schedule.expr), schedule.tz or default_tz)
    if isinstance(schedule, UnionSchedule):
        return " and ".join(describe_schedule(s, default_tz) for s in schedule.schedules)
    return str(schedule)


def describe_interval(interval: timedelta) -> str:
    """A fixed interval in words: ``every minute``, ``every 10 seconds``, ``every 90 minutes``."""
    micros = interval // timedelta(microseconds=1)
    for unit, size in _UNITS:
        if micros >= size and micros % size == 0:
            count = micros // size
            if unit == "millisecond" and micros > 1_000_000:
                return f"every {micros / 1_000_000:g} seconds"  # 1.5 s, not 1500 ms
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {micros} microseconds"


def describe_cron(expr: str) -> str:
    """A cron expression (5 fields, or 6 with seconds; or a macro) in words, without a zone.

    ``*/15 9-17 * * MON-FRI`` is ``every 15 minutes from 09:00 to 17:59, on
    weekdays``; what this function cannot word is ``cron EXPR``.
    """
    text = " ".join(expr.split())
    fields = MACROS.get(text.lower(), text).upper().split()
    if len(fields) == 6:
        if fields[0] != "0":
            return _seconds_cron(fields) or f"cron {text}"
        fields = fields[1:]
    if len(fields) != 5:
        return f"cron {text}"
    minute, hour, dom, month, dow = fields
    days = _days(dom, month, dow)
    times = _times(minute, hour)
    if days is None or times is None:
        return f"cron {text}"
    kind, words = times
    if kind == "at":
        return f"{days} at {words}"
    return words if days == "every day" else f"{words}, {days}"


def _describe_text(text: str, default_tz: str | None) -> str:
    """The stored text of a schedule (as ``str()`` gives it) in words."""
    if text.startswith("Union: "):
        parts = text.removeprefix("Union: ").split(" | ")
        return " and ".join(_describe_text(p.strip(), default_tz) for p in parts)
    if text.startswith("FixedSchedule: "):
        interval = _go_duration(text.removeprefix("FixedSchedule: ").strip())
        return describe_interval(interval) if interval is not None else text
    if text.startswith("Cron: "):
        match = re.fullmatch(r"(.+?)(?: \(([^()]+)\))?", text.removeprefix("Cron: ").strip())
        if match is not None:
            return _with_zone(describe_cron(match.group(1)), match.group(2) or default_tz)
    return text


def _go_duration(text: str) -> timedelta | None:
    """Go's ``time.Duration`` text (``1h30m0s``, ``500ms``) as a timedelta; None if it is not."""
    parts = _GO_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    micros = sum(float(number) * _GO_UNIT_US[unit] for number, unit in parts)
    return timedelta(microseconds=round(micros)) if micros > 0 else None


def _with_zone(words: str, zone: str | None) -> str:
    return f"{words} ({zone})" if zone else words


def _number(text: str, names: dict[str, int] | None = None) -> int | None:
    if text.isdigit():
        return int(text)
    return (names or {}).get(text)


def _clock(hour: int, minute: int) -> str:
    return f"{hour:02d}:{minute:02d}"


def _step(field: str) -> int | None:
    """``n`` of ``*/n``."""
    if field.startswith("*/") and field[2:].isdigit() and int(field[2:]) > 0:
        return int(field[2:])
    return None


def _hour_range(hour: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d+)-(\d+)", hour)
    if match is None:
        return None
    first, last = int(match.group(1)), int(match.group(2))
    return (first, last) if first <= last <= 23 else None


def _fixed(field: str, highest: int) -> list[int] | None:
    """The values of a field that lists numbers (``5``, ``0,30``); None for anything else."""
    values = [_number(v) for v in field.split(",")]
    if all(v is not None and v <= highest for v in values):
        return sorted({v for v in values if v is not None})
    return None


def _times(minute: str, hour: str) -> tuple[str, str] | None:
    """When in a day: ``("at", "02:30")`` or ``("every", "every 15 minutes")``; None if unsure.

    A step is worded as a pace only when it divides the hour (or the day)
    evenly: ``*/7`` runs at :56 and again at :00, which is not every 7 minutes.
    """
    minutes, hours = _fixed(minute, 59), _fixed(hour, 23)
    if minutes is not None and hours is not None:
        if len(minutes) * len(hours) > _MAX_LISTED_TIMES:
            return None
        if hours == minutes == [0]:
            return "at", "midnight"
        return "at", _and([_clock(h, m) for h in hours for m in minutes])
    span = _hour_range(hour)
    if minutes is not None and len(minutes) == 1:
        at = minutes[0]
        hour_step = 1 if hour == "*" else _step(hour)
        if hour_step is not None and 24 % hour_step == 0:
            every = "every hour" if hour_step == 1 else f"every {hour_step} hours"
            return "every", f"{every} at :{at:02d}"
        if span is not None:
            first, last = _clock(span[0], at), _clock(span[1], at)
            return "every", f"every hour at :{at:02d} from {first} to {last}"
        return None
    minute_step = 1 if minute == "*" else _step(minute)
    if minute_step is None or 60 % minute_step:
        return None
    pace = describe_interval(timedelta(minutes=minute_step))
    if hour == "*":
        return "every", pace
    if span is not None:
        last = _clock(span[1], 59 // minute_step * minute_step)
        return "every", f"{pace} from {_clock(span[0], 0)} to {last}"
    return None


def _days(dom: str, month: str, dow: str) -> str | None:
    """Which days: ``every day``, ``on weekdays``, ``on day 1 of every month``, ..."""
    if month != "*":
        month_number = _number(month, _MONTH_NUMBERS)
        day = _number(dom)
        if month_number is None or not 1 <= month_number <= 12 or day is None or dow != "*":
            return None
        return f"every {day} {calendar.month_name[month_number]}"
    if dom != "*":
        days = _fixed(dom, 31)
        if days is None or 0 in days or dow != "*":
            return None
        plural = "s" if len(days) > 1 else ""
        return f"on day{plural} {_and([str(d) for d in days])} of every month"
    return _weekdays(dow)


def _weekdays(dow: str) -> str | None:
    if dow == "*":
        return "every day"
    days: set[int] = set()
    for part in dow.split(","):
        bounds = part.split("-")
        numbers = [_number(b, _DAY_NUMBERS) for b in bounds]
        if len(bounds) > 2 or any(n is None or n > 7 for n in numbers):
            return None
        first, last = (numbers[0], numbers[-1])
        assert first is not None and last is not None
        if first > last:
            return None
        days.update(d % 7 for d in range(first, last + 1))
    if days == {1, 2, 3, 4, 5}:
        return "on weekdays"
    if days == {0, 6}:
        return "on weekends"
    if days == set(range(7)):
        return "every day"
    ordered = sorted(days, key=lambda d: (d + 6) % 7)  # Monday first
    return "every " + _and([_DAY_NAMES[d] for d in ordered])


def _seconds_cron(fields: list[str]) -> str | None:
    """A six-field expression that fires every second or every n seconds of every minute."""
    second, rest = fields[0], fields[1:]
    if rest != ["*", "*", "*", "*", "*"]:
        return None
    if second == "*":
        return "every second"
    step = _step(second)
    return describe_interval(timedelta(seconds=step)) if step is not None else None


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
