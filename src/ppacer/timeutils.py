"""Time in ppacer: the only module that reads the clock or formats stored timestamps.

Inside ppacer every datetime is timezone-aware and in UTC. Stored timestamps are
text in one sortable form, always six fraction digits and always UTC, e.g.
``2024-03-11T22:50:20.000000UTC+00:00``. That string is also valid for the
original Go layout ``2006-01-02T15:04:05.999999MST-07:00``, so its parser reads
it, and :func:`parse_ts` reads the original's own forms (trimmed fractions,
zone abbreviations such as ``CET+01:00``) as well as ISO 8601.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = [
    "Clock",
    "ManualClock",
    "SystemClock",
    "format_ts",
    "parse_ts",
    "require_aware",
    "to_utc",
    "utc_now",
]

_TS_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"\s*([A-Za-z]{0,6})\s*(Z|[+-]\d{2}:?\d{2})?$"
)


def utc_now() -> datetime:
    """Return the current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def require_aware(value: datetime, what: str) -> datetime:
    """Return ``value`` in UTC; a naive datetime is an error naming ``what``."""
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{what} is a naive datetime ({value.isoformat()}); ppacer needs a timezone-aware "
            "datetime, e.g. datetime(..., tzinfo=timezone.utc)"
        )
    return value.astimezone(UTC)


def to_utc(value: datetime) -> datetime:
    """Convert an aware datetime to UTC (alias of :func:`require_aware` for internal use)."""
    return require_aware(value, "datetime")


def format_ts(value: datetime) -> str:
    """Format an aware datetime as ppacer's stored, sortable timestamp text."""
    # Most values are the clock's, in UTC already: no conversion to make.
    u = (
        value
        if type(value) is datetime and value.tzinfo is UTC
        else require_aware(value, "timestamp")
    )
    # Formatted by hand: strftime does not zero-pad years below 1000 on every platform.
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
        f".{u.microsecond:06d}UTC+00:00"
    )


#: Length of ppacer's stored timestamp text, ``2024-03-11T22:50:20.000000UTC+00:00``.
_STORED_TS_LEN = 35


def parse_ts(text: str) -> datetime:
    """Parse a timestamp in ppacer's stored form, the original's form or ISO 8601.

    The result is an aware datetime in UTC. A timestamp without an offset is
    rejected: ppacer never guesses a timezone.
    """
    # Fast path for the stored form (always six fraction digits, always UTC): the
    # C ISO parser is ~20x faster than the regular expression, and pages of 1,000
    # runs parse thousands of these.
    if (
        isinstance(text, str)
        and len(text) == _STORED_TS_LEN
        and text[10] == "T"
        and text[19] == "."
        and text.endswith("UTC+00:00")
    ):
        try:
            return datetime.fromisoformat(text[:26]).replace(tzinfo=UTC)
        except ValueError:
            pass  # the general path says what is wrong with it
    m = _TS_RE.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"invalid timestamp {text!r}: expected e.g. 2024-03-11T22:50:20UTC+00:00")
    year, month, day, hour, minute, second, frac, abbrev, offset = m.groups()
    if offset is None:
        if abbrev.upper() in ("UTC", "Z", "GMT"):
            offset = "+00:00"
        else:
            raise ValueError(f"invalid timestamp {text!r}: no UTC offset")
    micro = int((frac or "0")[:6].ljust(6, "0"))
    if offset == "Z":
        delta = timedelta(0)
    else:
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        off_h, off_m = int(digits[:2]), int(digits[2:])
        if off_h > 23 or off_m > 59:
            raise ValueError(f"invalid timestamp {text!r}: UTC offset {offset} out of range")
        delta = sign * timedelta(hours=off_h, minutes=off_m)
    try:
        naive = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro
        )
        return (naive - delta).replace(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"invalid timestamp {text!r}: {exc}") from None


class Clock(Protocol):
    """Where ppacer's loops read the time; tests inject a :class:`ManualClock`."""

    def now(self) -> datetime:
        """Return the current time, aware, in UTC."""
        ...

    def seconds_until(self, when: datetime) -> float:
        """Return how many real seconds to wait until ``when`` (0 if past)."""
        ...

    def monotonic(self) -> float:
        """Return a monotonic time in seconds, for durations and deadlines (leases)."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Return the current time in UTC."""
        return utc_now()

    def seconds_until(self, when: datetime) -> float:
        """Return the real seconds until ``when``."""
        return max(0.0, (when - utc_now()).total_seconds())

    def monotonic(self) -> float:
        """Return ``time.monotonic()`` (the event loop's own clock)."""
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to; waiting loops are woken on each move.

    With it a test runs days of schedule time in milliseconds: ``advance``
    moves the time and wakes the scheduler's loops, which then see the new
    time immediately.
    """

    def __init__(self, start: datetime) -> None:
        self._now = require_aware(start, "ManualClock start")
        self._start = self._now
        self._lock = threading.Lock()
        self._callbacks: list[_Callback] = []

    def now(self) -> datetime:
        """Return the clock's current time."""
        with self._lock:
            return self._now

    def seconds_until(self, when: datetime) -> float:
        """Return a short real wait: a manual clock moves only by ``advance``/``set``."""
        return 0.0 if when <= self.now() else 3600.0

    def monotonic(self) -> float:
        """Seconds the clock has moved since it was made: leases expire only by ``advance``."""
        return (self.now() - self._start).total_seconds()

    def set(self, when: datetime) -> None:
        """Move the clock to ``when`` (never backwards) and wake waiting loops."""
        when = require_aware(when, "ManualClock.set")
        with self._lock:
            if when < self._now:
                raise ValueError("ManualClock cannot move backwards")
            self._now = when
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the clock forward by ``delta`` (a timedelta or seconds) and return the new time."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        self.set(self.now() + step)
        return self.now()

    def on_change(self, callback: _Callback) -> None:
        """Call ``callback()`` (from the thread that moves the clock) after each move."""
        with self._lock:
            self._callbacks.append(callback)


class _Callback(Protocol):
    def __call__(self) -> None: ...


def monotonic() -> float:
    """Return a monotonic time in seconds, for measuring durations and deadlines."""
    return time.monotonic()
