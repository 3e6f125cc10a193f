"""The task scheduler's timers: retry delays, run deadlines, lease expiry, the RUNNING flush.

The event loop's timers (``loop.call_later``) schedule the real wake-ups; what
a timer decides when it fires is based on the injected clock:

- a run deadline is a wall-clock instant: when its timer fires before the
  clock got there (a :class:`~ppacer.timeutils.ManualClock` that was not moved)
  it is set again;
- the lease timer wakes the task scheduler at the earliest lease expiry, in
  ``clock.monotonic()`` seconds, and the scheduler asks the clock which leases
  have expired (:meth:`TaskScheduler.expire_leases`, which a test calls after
  moving a manual clock instead of waiting);
- a retry delay is real seconds from the failure, or from a failure recorded
  before a restart of the scheduler (due at a wall-clock instant).

Timers asked for before the loop runs (while runs are loaded at start-up) wait
until :meth:`Timers.bind` and start then. Timers are per run (by its key,
``(dag_id, exec_ts)``), so a run that finishes, is marked or reloaded has them
all cancelled at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from ppacer.timeutils import Clock

__all__ = ["RunKey", "Timers"]

# (dag_id, exec_ts)
RunKey = tuple[str, str]
Callback = Callable[[], None]

# Slack on retry delays: loop timers may fire a hair early, and the stored
# (wall-clock) timestamps must never show a retry before its delay.
_RETRY_SLACK_S = 0.001


class Timers:
    """Loop timers of one task scheduler, decided on its clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.loop: asyncio.AbstractEventLoop | None = None
        self._retries: dict[RunKey, dict[str, asyncio.TimerHandle]] = {}
        self._deadlines: dict[RunKey, asyncio.TimerHandle] = {}
        # Asked for before the loop ran: (run, task id or None for the deadline, due, callback).
        self._pending: list[tuple[RunKey, str | None, datetime, Callback]] = []
        self._lease: asyncio.TimerHandle | None = None
        self._lease_due = 0.0
        #: How late (seconds) the lease timer fired last: the event loop did not run
        #: for about that long (the process was paused, or the loop was blocked).
        self.lease_late_s = 0.0
        self._flush: asyncio.TimerHandle | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run on ``loop`` from now on, starting the timers asked for before."""
        self.loop = loop
        pending, self._pending = self._pending, []
        for key, task_id, due, callback in pending:
            if task_id is None:
                self.deadline_at(key, due, callback)
            else:
                self.retry_at(key, task_id, due, callback)

    # ------------------------------------------------------------------ per run

    def retry_in(self, key: RunKey, task_id: str, delay_s: float, callback: Callback) -> None:
        """Call ``callback`` once ``task_id``'s retry delay of ``delay_s`` seconds is over."""
        if self.loop is None:
            due = self.clock.now() + timedelta(seconds=delay_s)
            self._pending.append((key, task_id, due, callback))
            return
        delay_s = delay_s + _RETRY_SLACK_S if delay_s > 0 else 0.0
        handle = self.loop.call_later(delay_s, self._retry_due, key, task_id, callback)
        self._retries.setdefault(key, {})[task_id] = handle

    def retry_at(self, key: RunKey, task_id: str, due: datetime, callback: Callback) -> None:
        """Call ``callback`` for ``task_id``'s retry at the wall-clock instant ``due``."""
        if self.loop is None:
            self._pending.append((key, task_id, due, callback))
        else:
            self.retry_in(key, task_id, self.clock.seconds_until(due), callback)

    def _retry_due(self, key: RunKey, task_id: str, callback: Callback) -> None:
        retries = self._retries.get(key)
        if retries is not None:
            retries.pop(task_id, None)
        callback()

    def deadline_at(self, key: RunKey, due: datetime, callback: Callback) -> None:
        """Call ``callback`` once the clock reaches the run's deadline ``due``."""
        if self.loop is None:
            self._pending.append((key, None, due, callback))
            return
        self._deadlines[key] = self.loop.call_later(
            self.clock.seconds_until(due), self._deadline_due, key, due, callback
        )

    def _deadline_due(self, key: RunKey, due: datetime, callback: Callback) -> None:
        self._deadlines.pop(key, None)
        if self.clock.seconds_until(due) > 0:
            self.deadline_at(key, due, callback)  # a manual clock has not got there yet
            return
        callback()

    def cancel_run(self, key: RunKey) -> None:
        """Cancel the run's retry and deadline timers (also those not started yet)."""
        for handle in self._retries.pop(key, {}).values():
            handle.cancel()
        deadline = self._deadlines.pop(key, None)
        if deadline is not None:
            deadline.cancel()
        if self._pending:
            self._pending = [p for p in self._pending if p[0] != key]

    # ------------------------------------------------------------------ scheduler-wide

    def lease_at(self, due: float | None, callback: Callback) -> None:
        """Call ``callback`` when ``clock.monotonic()`` reaches ``due`` (None: no timer).

        Replaces the lease timer set before, unless it is set for the same time.
        """
        if self.loop is None:
            return
        if self._lease is not None:
            if due is not None and abs(self._lease_due - due) < 1e-3:
                return
            self._lease.cancel()
            self._lease = None
        if due is not None:
            self._lease_due = due
            delay_s = max(0.0, due - self.clock.monotonic())
            self._lease = self.loop.call_later(delay_s, self._lease_fired, callback)

    def _lease_fired(self, callback: Callback) -> None:
        self._lease = None
        self.lease_late_s = max(0.0, self.clock.monotonic() - self._lease_due)
        try:
            callback()
        finally:
            self.lease_late_s = 0.0

    def flush_soon(self, delay_s: float, callback: Callback) -> None:
        """Call ``callback`` in ``delay_s`` seconds, unless a flush is already due."""
        if self._flush is None and self.loop is not None:
            self._flush = self.loop.call_later(delay_s, self._flush_fired, callback)

    def _flush_fired(self, callback: Callback) -> None:
        self._flush = None
        callback()

    def stop(self) -> None:
        """Cancel every timer and start no more (the loop is going away)."""
        for key in list(self._retries) + list(self._deadlines):
            self.cancel_run(key)
        self._pending.clear()
        for handle in (self._lease, self._flush):
            if handle is not None:
                handle.cancel()
        self._lease = self._flush = None
        self.loop = None
