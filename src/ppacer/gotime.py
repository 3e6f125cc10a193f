"""Time in the forms the original Go ppacer writes and reads, for its clients.

- its timestamp text, layout ``2006-01-02T15:04:05.999999MST-07:00``: fraction
  digits trimmed of trailing zeros (no dot at all for whole seconds), so the
  run ``...42.120000UTC+00:00`` is ``...42.12UTC+00:00`` in rows its executor
  writes (:func:`go_timestamp`);
- its durations, ``time.Duration.String()``: ``"71.751ms"``, ``"1m2.5s"``
  (:func:`go_duration`);
- its UI's timestamps, ``api.Timestamp`` (:func:`ui_timestamp`).
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from ppacer.timeutils import parse_ts

__all__ = ["go_duration", "go_timestamp", "timestamp_forms", "ui_timestamp"]


def go_timestamp(stored: str) -> str:
    """The original's text of a stored timestamp: ``...42.120000UTC`` is ``...42.12UTC``."""
    head, dot, rest = stored.partition(".")
    if not dot:
        return stored
    n = 0
    while n < len(rest) and rest[n].isdigit():
        n += 1
    digits, zone = rest[:n], rest[n:]
    digits = digits.rstrip("0")
    return f"{head}.{digits}{zone}" if digits else f"{head}{zone}"


def timestamp_forms(stored: str) -> tuple[str, ...]:
    """Every text a client may have written for the stored timestamp (ours, the original's)."""
    go = go_timestamp(stored)
    return (stored,) if go == stored else (stored, go)


def _frac(value: int, prec: int) -> tuple[str, int]:
    """Go's fmtFrac: the fraction of ``value`` / 10**prec without trailing zeros, and the whole."""
    unit = 10**prec
    digits = f"{value % unit:0{prec}d}".rstrip("0")
    return ("." + digits if digits else ""), value // unit


def go_duration(seconds: float | timedelta) -> str:
    """``time.Duration.String()`` of a duration: ``0s``, ``500µs``, ``71.751ms``, ``1h2m3.5s``."""
    if isinstance(seconds, timedelta):
        ns = (seconds.days * 86_400 + seconds.seconds) * 10**9 + seconds.microseconds * 1000
    else:
        ns = round(seconds * 10**9)
    if ns == 0:
        return "0s"
    sign, u = ("-" if ns < 0 else ""), abs(ns)
    if u < 10**9:
        if u < 1000:
            return f"{sign}{u}ns"
        frac, whole = _frac(u, 3) if u < 10**6 else _frac(u, 6)
        return f"{sign}{whole}{frac}{'µs' if u < 10**6 else 'ms'}"
    frac, secs = _frac(u, 9)
    out = f"{secs % 60}{frac}s"
    minutes = secs // 60
    if minutes:
        out = f"{minutes % 60}m{out}"
        if minutes // 60:
            out = f"{minutes // 60}h{out}"
    return sign + out


def ui_timestamp(stored: str | None, zone: tzinfo, now: datetime) -> dict[str, str]:
    """The original UI's ``api.Timestamp`` of a stored timestamp, shown in ``zone``.

    ``toDisplay`` is the time alone on ``now``'s day, else date and time; a
    missing timestamp is Go's zero time (year 1), as the original answers for
    a task that has not started.
    """
    if not stored:
        return {
            "toDisplay": "0001-01-01 00:00:00",
            "date": "0001-01-01",
            "time": "00:00:00",
            "timezone": "UTC",
        }
    local = parse_ts(stored).astimezone(zone)
    clock = local.strftime("%H:%M:%S")
    micro = f"{local.microsecond:06d}".rstrip("0")
    today = local.date() == now.astimezone(zone).date()
    return {
        "toDisplay": clock if today else f"{local:%Y-%m-%d} {clock}",
        "date": f"{local:%Y-%m-%d}",
        "time": f"{clock}.{micro}" if micro else clock,
        "timezone": local.tzname() or "UTC",
    }
