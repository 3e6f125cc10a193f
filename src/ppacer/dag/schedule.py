"""Schedules: when a DAG runs.

A schedule is anything with ``start()``, ``next(current, prev)`` and a string
form (``str(schedule)``, stored in ``dags.Schedule``). Cron and other kinds plug
in through the same :class:`Schedule` protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from ppacer.timeutils import require_aware

__all__ = ["FixedSchedule", "Schedule", "first_point_at_or_after"]


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


def _format_interval(interval: timedelta) -> str:
    total_us = interval // timedelta(microseconds=1)
    if total_us % 1_000_000:
        return f"{total_us / 1_000_000:g}s"
    seconds = total_us // 1_000_000
    parts = []
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    if seconds or not parts:
        parts.append(f"{seconds}s")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class FixedSchedule:
    """A point every ``interval`` from ``start`` on, in absolute time (DST does not matter).

    ``next`` is O(1): it is arithmetic, not a walk from ``start``.
    """

    start_ts: datetime
    interval: timedelta

    def __init__(self, start: datetime, interval: timedelta | float) -> None:
        step = interval if isinstance(interval, timedelta) else timedelta(seconds=interval)
        if step <= timedelta(0):
            raise ValueError(f"FixedSchedule interval must be positive, got {step}")
        if step < timedelta(milliseconds=1):
            raise ValueError(f"FixedSchedule interval must be at least 1 ms, got {step}")
        object.__setattr__(self, "start_ts", require_aware(start, "FixedSchedule start"))
        object.__setattr__(self, "interval", step)

    def start(self) -> datetime:
        """Return the first point."""
        return self.start_ts

    def next(self, current: datetime, prev: datetime | None = None) -> datetime:
        """Return the first point strictly after ``current``."""
        current = require_aware(current, "current")
        if current < self.start_ts:
            return self.start_ts
        steps = (current - self.start_ts) // self.interval + 1
        return self.start_ts + steps * self.interval

    def __str__(self) -> str:
        return f"FixedSchedule: {_format_interval(self.interval)}"


def first_point_at_or_after(schedule: Schedule, when: datetime) -> datetime:
    """Return the first point of ``schedule`` at or after ``when``."""
    start = schedule.start()
    if when <= start:
        return start
    return schedule.next(when - timedelta(microseconds=1), None)
