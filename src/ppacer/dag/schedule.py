"""Schedules: when a DAG runs.

A schedule is anything with ``start()``, ``next(current, prev)`` and a string
form (``str(schedule)``, stored in ``dags.Schedule``). Cron and other kinds plug
in through the same :class:`Schedule` protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from ppacer.timeutils import require_aware

__all__ = [
    "NEVER",
    "FixedSchedule",
    "Schedule",
    "UnionSchedule",
    "first_point_at_or_after",
    "format_duration",
    "last_point_before",
]


@runtime_checkable
class Schedule(Protocol):
    """When a DAG runs: a sequence of points in time from ``start()`` on."""

    def start(self) -> datetime:
        """Return the first point of the schedule (aware, UTC)."""
        ...

    def next(self, current: datetime, prev: datetime | None = None) -> datetime:
        """Return the first schedule point strictly after ``current``.

        ``prev`` is the previous point the scheduler used, when it knows it;
        schedules that need no memory ignore it.
        """
        ...

    def __str__(self) -> str:
        """Return the human form stored in ``dags.Schedule``."""
        ...


def _fraction(value: int, unit: int) -> str:
    whole, rest = divmod(value, unit)
    if not rest:
        return str(whole)
    digits = str(rest).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def format_duration(interval: timedelta) -> str:
    """Format a duration as Go's ``time.Duration.String`` does (``10s``, ``1h30m0s``, ``500ms``).

    The original stores schedules in this form, e.g. ``FixedSchedule: 10s``.
    """
    ns = (interval // timedelta(microseconds=1)) * 1000
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_fraction(ns, 1_000)}\u00b5s"
    if ns < 1_000_000_000:
        return f"{sign}{_fraction(ns, 1_000_000)}ms"
    hours, ns = divmod(ns, 3_600_000_000_000)
    minutes, ns = divmod(ns, 60_000_000_000)
    out = f"{hours}h" if hours else ""
    if hours or minutes:
        out += f"{minutes}m"
    return f"{sign}{out}{_fraction(ns, 1_000_000_000)}s"


@dataclass(frozen=True, slots=True)
class FixedSchedule:
    """A point every ``interval`` from ``start`` on, in absolute time (DST does not matter).

    ``next`` is O(1): it is arithmetic, not a walk from ``start``.
    """

    start_ts: datetime
    interval: timedelta
    end_ts: datetime | None

    def __init__(
        self, start: datetime, interval: timedelta | float, end: datetime | None = None
    ) -> None:
        step = interval if isinstance(interval, timedelta) else timedelta(seconds=interval)
        if step <= timedelta(0):
            raise ValueError(f"FixedSchedule interval must be positive, got {step}")
        if step < timedelta(milliseconds=1):
            raise ValueError(f"FixedSchedule interval must be at least 1 ms, got {step}")
        start_utc = require_aware(start, "FixedSchedule start")
        end_utc = require_aware(end, "FixedSchedule end") if end is not None else None
        if end_utc is not None and end_utc < start_utc:
            raise ValueError(f"FixedSchedule end {end_utc} is before its start {start_utc}")
        object.__setattr__(self, "start_ts", start_utc)
        object.__setattr__(self, "interval", step)
        object.__setattr__(self, "end_ts", end_utc)

    def start(self) -> datetime:
        """Return the first point."""
        return self.start_ts

    def next(self, current: datetime, prev: datetime | None = None) -> datetime:
        """Return the first point strictly after ``current`` (:data:`NEVER` past ``end``)."""
        current = require_aware(current, "current")
        if current < self.start_ts:
            return self.start_ts
        steps = (current - self.start_ts) // self.interval + 1
        try:
            point = self.start_ts + steps * self.interval
        except OverflowError:
            return NEVER
        return NEVER if self.end_ts is not None and point > self.end_ts else point

    def __str__(self) -> str:
        return f"FixedSchedule: {format_duration(self.interval)}"


#: What ``next()`` returns when a schedule has no more points (past its end).
NEVER = datetime.max.replace(tzinfo=UTC)


def last_point_before(schedule: Schedule, first: datetime, before: datetime) -> datetime:
    """Return the last point of ``schedule`` before ``before``, given a point ``first`` before it.

    A bisection over time using only ``next()``: O(log) calls however many
    points lie between, so a long outage costs no more than a short one.
    """
    lo, hi = first, before
    step = timedelta(microseconds=1)
    while hi - lo > step:
        mid = lo + (hi - lo) / 2
        point = schedule.next(mid, None)
        if point < before:
            lo = point
        else:
            hi = mid
    return lo


def first_point_at_or_after(schedule: Schedule, when: datetime) -> datetime:
    """Return the first point of ``schedule`` at or after ``when``."""
    start = schedule.start()
    if when <= start:
        return start
    return schedule.next(when - timedelta(microseconds=1), None)


class UnionSchedule:
    """The points of several schedules together (a point shared by two runs once)."""

    __slots__ = ("schedules",)

    def __init__(self, *schedules: Schedule) -> None:
        if not schedules:
            raise ValueError("UnionSchedule needs at least one schedule")
        for schedule in schedules:
            if not isinstance(schedule, Schedule):
                raise ValueError(f"UnionSchedule: {schedule!r} is not a Schedule")
        self.schedules: tuple[Schedule, ...] = tuple(schedules)

    def start(self) -> datetime:
        """The earliest first point."""
        return min(s.start() for s in self.schedules)

    def next(self, current: datetime, prev: datetime | None = None) -> datetime:
        """The earliest point of any schedule strictly after ``current``."""
        return min(s.next(current, None) for s in self.schedules)

    def __str__(self) -> str:
        return "Union: " + " | ".join(str(s) for s in self.schedules)

    def __repr__(self) -> str:
        return f"UnionSchedule({', '.join(repr(s) for s in self.schedules)})"
