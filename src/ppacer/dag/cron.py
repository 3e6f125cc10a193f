"""Cron schedules in an IANA timezone, with classic cron's daylight-saving rules.

Expressions: five fields (minute hour day-of-month month day-of-week) or six
with a leading seconds field; ``*``, lists ``a,b``, ranges ``a-b``, steps
``*/n`` and ``a-b/n``; month names JAN-DEC and weekday names SUN-SAT; 0 and 7
are both Sunday; macros ``@hourly @daily @midnight @weekly @monthly @yearly
@annually``. When both day-of-month and day-of-week are restricted (neither
starts with ``*``), a day matches if EITHER matches (classic cron).

Daylight-saving rules (classic cron's):

* A job at a fixed local time that does not exist (spring forward) runs once,
  at the first valid instant after the gap. Example: ``30 2 * * *`` in
  Europe/Warsaw on 2024-03-31 (02:00 CET jumps to 03:00 CEST) runs at 03:00
  CEST = 01:00 UTC. Several such times in one gap run once.
* A job at a fixed local time that happens twice (fall back) runs once, at its
  first occurrence. Example: ``30 2 * * *`` in Europe/Warsaw on 2024-10-27
  (03:00 CEST falls back to 02:00 CET) runs at 02:30 CEST = 00:30 UTC only.
* A job whose hour field is a wildcard (``*`` or ``*/n``: hourly, every 15
  minutes, ``30 */2 * * *``) keeps its pace in absolute time: it runs at every
  real instant whose local wall time matches. Local times in a spring-forward
  gap do not happen, so they do not run; local times in a repeated hour happen
  twice, so they run twice. Example: ``0 * * * *`` runs 23 times on
  2024-03-31 and 25 times on 2024-10-27 in Europe/Warsaw; ``30 */2 * * *`` on
  2024-10-27 runs at 02:30 CEST and again at 02:30 CET.

``FixedSchedule`` is in absolute time and ignores DST altogether.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ppacer.dag.schedule import NEVER
from ppacer.timeutils import require_aware

__all__ = ["MACROS", "CronSchedule"]

#: The macros a cron expression may be given as, and what each stands for.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Longest wait between two points of any valid expression (Feb 29 on a given weekday).
_MAX_DAYS = 366 * 30


def _parse_field(text: str, name: str, lo: int, hi: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()

    def number(token: str) -> int:
        token = token.upper()
        if token in names:
            return names[token]
        if not token.isdigit():
            raise ValueError(f"{name} field: {token!r} is not a number")
        return int(token)

    for part in text.split(","):
        if not part:
            raise ValueError(f"{name} field: empty list item in {text!r}")
        body, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{name} field: bad step {step_text!r}")
            step = int(step_text)
        if body == "*":
            first, last = lo, hi
        elif "-" in body:
            a, _, b = body.partition("-")
            first, last = number(a), number(b)
        else:
            first = number(body)
            last = hi if step_text else first
        top = 7 if name == "day-of-week" else hi
        if not (lo <= first <= top and lo <= last <= top):
            raise ValueError(f"{name} field: {part!r} is out of range {lo}-{hi}")
        if first > last:
            raise ValueError(f"{name} field: range {part!r} goes backwards")
        values.update(range(first, last + 1, step))
    if name == "day-of-week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


class CronSchedule:
    """A cron expression evaluated in a timezone, bounded by ``start`` and ``end``.

    ``next()`` walks local days (not minutes) and looks only at the matching
    times of each day, so it is fast for rare expressions too.
    """

    __slots__ = (
        "_days_month",
        "_dom_star",
        "_dow_star",
        "_hour_wildcard",
        "_hours",
        "_minutes",
        "_months",
        "_seconds",
        "_weekdays",
        "_zone",
        "end_ts",
        "expr",
        "start_ts",
        "tz",
    )

    def __init__(
        self,
        expr: str,
        *,
        tz: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        if not isinstance(expr, str) or not expr.strip():
            raise ValueError(f"invalid cron expression {expr!r}: empty")
        self.expr = " ".join(expr.split())
        fields = MACROS.get(self.expr.lower(), self.expr).split()
        if len(fields) not in (5, 6):
            raise ValueError(
                f"invalid cron expression {expr!r}: expected 5 fields (or 6 with seconds), "
                f"got {len(fields)}"
            )
        if len(fields) == 5:
            fields = ["0", *fields]
        sec, minute, hour, dom, month, dow = fields
        try:
            self._seconds = sorted(_parse_field(sec, "second", 0, 59, {}))
            self._minutes = sorted(_parse_field(minute, "minute", 0, 59, {}))
            self._hours = sorted(_parse_field(hour, "hour", 0, 23, {}))
            self._days_month = _parse_field(dom, "day-of-month", 1, 31, {})
            self._months = _parse_field(month, "month", 1, 12, _MONTHS)
            self._weekdays = _parse_field(dow, "day-of-week", 0, 6, _DAYS)
        except ValueError as exc:
            raise ValueError(f"invalid cron expression {expr!r}: {exc}") from None
        self._hour_wildcard = hour.startswith("*")
        self._dom_star = dom.startswith("*")
        self._dow_star = dow.startswith("*")
        if self._dow_star and not any(
            d <= (29 if m == 2 else calendar.monthrange(2001, m)[1])
            for m in self._months
            for d in self._days_month
        ):
            raise ValueError(f"invalid cron expression {expr!r}: no month has such a day")
        self.tz = tz
        try:
            self._zone = ZoneInfo(tz or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {tz!r} for cron expression {expr!r}") from None
        self.start_ts = require_aware(start, "CronSchedule start") if start is not None else _EPOCH
        self.end_ts = require_aware(end, "CronSchedule end") if end is not None else None
        if self.end_ts is not None and self.end_ts < self.start_ts:
            raise ValueError(f"CronSchedule end {self.end_ts} is before its start {self.start_ts}")

    def with_default_tz(self, tz: str) -> CronSchedule:
        """This schedule, in ``tz`` if it was given no zone of its own."""
        if self.tz is not None:
            return self
        end = self.end_ts
        start = None if self.start_ts == _EPOCH else self.start_ts
        return CronSchedule(self.expr, tz=tz, start=start, end=end)

    def start(self) -> datetime:
        """The first point at or after ``start``."""
        return self._next_after(self.start_ts - timedelta(microseconds=1))

    def next(self, current: datetime, prev: datetime | None = None) -> datetime:
        """The first point strictly after ``current`` (:data:`NEVER` past ``end``)."""
        current = require_aware(current, "current")
        if current < self.start_ts:
            current = self.start_ts - timedelta(microseconds=1)
        return self._next_after(current)

    def _next_after(self, current: datetime) -> datetime:
        if current >= NEVER - timedelta(days=2):
            return NEVER
        day = current.astimezone(self._zone).date() - timedelta(days=1)
        for _ in range(_MAX_DAYS):
            if self._day_matches(day):
                found = self._first_in_day(day, current)
                if found is not None:
                    if self.end_ts is not None and found > self.end_ts:
                        return NEVER
                    return found
            if day >= date.max - timedelta(days=2):
                return NEVER
            day += timedelta(days=1)
        return NEVER

    def _day_matches(self, day: date) -> bool:
        if day.month not in self._months:
            return False
        dom_ok = day.day in self._days_month
        dow_ok = (day.weekday() + 1) % 7 in self._weekdays
        if self._dom_star and self._dow_star:
            return True
        if self._dom_star:
            return dow_ok
        if self._dow_star:
            return dom_ok
        return dom_ok or dow_ok

    def _first_in_day(self, day: date, current: datetime) -> datetime | None:
        # Hours in order; within an hour the repeated (fold=1) times come after
        # the first ones, and both before the next hour, so the first hour with
        # a candidate holds the answer.
        for hour in self._hours:
            best: datetime | None = None
            for instant in self._instants(day, hour):
                if instant > current and (best is None or instant < best):
                    best = instant
            if best is not None:
                return best
        return None

    def _instants(self, day: date, hour: int) -> Iterator[datetime]:
        for minute in self._minutes:
            for second in self._seconds:
                wall = datetime.combine(day, time(hour, minute, second))
                first = wall.replace(tzinfo=self._zone, fold=0)
                repeat = wall.replace(tzinfo=self._zone, fold=1)
                utc_first = first.astimezone(UTC)
                exists = utc_first.astimezone(self._zone).replace(tzinfo=None) == wall
                if not exists:
                    if not self._hour_wildcard:
                        yield self._gap_end(repeat.astimezone(UTC), utc_first)
                    continue
                yield utc_first
                if self._hour_wildcard and first.utcoffset() != repeat.utcoffset():
                    yield repeat.astimezone(UTC)

    def _gap_end(self, lo: datetime, hi: datetime) -> datetime:
        """The instant a spring-forward gap ends (its offset change), between ``lo`` and ``hi``."""
        after = hi.astimezone(self._zone).utcoffset()
        while hi - lo > timedelta(microseconds=1):
            mid = lo + (hi - lo) / 2
            if mid.astimezone(self._zone).utcoffset() == after:
                hi = mid
            else:
                lo = mid
        return hi

    def __str__(self) -> str:
        return f"Cron: {self.expr}" + (f" ({self.tz})" if self.tz else "")

    def __repr__(self) -> str:
        return (
            f"CronSchedule({self.expr!r}, tz={self.tz!r}, start={self.start_ts.isoformat()}, "
            f"end={self.end_ts.isoformat() if self.end_ts else None})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CronSchedule) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))
