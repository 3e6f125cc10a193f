"""The task scheduler's timers: started once the loop runs, cancelled per run, on the clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from ppacer.scheduler.timers import Timers
from ppacer.timeutils import ManualClock, SystemClock

RUN_A = ("etl", "2026-01-01T00:00:00.000000UTC+00:00")
RUN_B = ("etl", "2026-01-02T00:00:00.000000UTC+00:00")


def test_timers_asked_for_before_the_loop_runs_start_when_it_binds() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    timers = Timers(clock)
    fired: list[str] = []
    timers.retry_in(RUN_A, "load", 0.0, lambda: fired.append("retry"))
    timers.deadline_at(RUN_A, clock.now() - timedelta(seconds=1), lambda: fired.append("due"))

    async def scenario() -> None:
        done = asyncio.Event()
        timers.bind(asyncio.get_running_loop())
        timers.retry_in(RUN_B, "load", 0.01, done.set)  # after both of the above
        await asyncio.wait_for(done.wait(), 5)

    assert fired == []  # nothing runs without a loop
    asyncio.run(scenario())
    assert sorted(fired) == ["due", "retry"]


def test_a_runs_cancelled_timers_never_fire_while_other_runs_go_on() -> None:
    timers = Timers(SystemClock())
    fired: list[str] = []
    timers.retry_in(RUN_A, "early", 0.0, lambda: fired.append("pending"))

    async def scenario() -> None:
        timers.bind(asyncio.get_running_loop())
        timers.retry_in(RUN_A, "load", 0.0, lambda: fired.append("started"))
        timers.cancel_run(RUN_A)
        done = asyncio.Event()
        timers.retry_in(RUN_B, "load", 0.01, done.set)  # due after the cancelled ones
        await asyncio.wait_for(done.wait(), 5)

    asyncio.run(scenario())
    assert fired == []


def test_a_deadline_the_clock_has_not_reached_does_not_fire() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    timers = Timers(clock)
    fired: list[str] = []

    async def scenario() -> None:
        timers.bind(asyncio.get_running_loop())
        timers.deadline_at(RUN_A, clock.now() + timedelta(seconds=1), lambda: fired.append("A"))
        done = asyncio.Event()
        timers.deadline_at(RUN_B, clock.now(), done.set)
        await asyncio.wait_for(done.wait(), 5)

    asyncio.run(scenario())
    assert fired == []


def test_the_lease_timer_wakes_at_the_clocks_expiry_and_stop_cancels_everything() -> None:
    clock = SystemClock()
    timers = Timers(clock)
    fired: list[str] = []

    async def scenario() -> None:
        timers.bind(asyncio.get_running_loop())
        woke = asyncio.Event()
        timers.lease_at(clock.monotonic() + 0.01, woke.set)
        await asyncio.wait_for(woke.wait(), 5)
        timers.lease_at(clock.monotonic(), lambda: fired.append("lease"))
        timers.flush_soon(0.0, lambda: fired.append("flush"))
        timers.retry_in(RUN_A, "load", 0.0, lambda: fired.append("retry"))
        timers.stop()
        timers.flush_soon(0.0, lambda: fired.append("late"))  # after stop: not scheduled
        # A sentinel due after every timer above: once it fired, they would have too.
        timers.bind(asyncio.get_running_loop())
        done = asyncio.Event()
        timers.retry_in(RUN_B, "load", 0.02, done.set)
        await asyncio.wait_for(done.wait(), 5)

    asyncio.run(scenario())
    assert fired == []
