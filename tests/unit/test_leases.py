"""Leases on the scheduler's clock: a ManualClock decides when they expire, not real time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

import ppacer
from ppacer import Node, TaskConfig
from ppacer.api.models import TaskToExec
from ppacer.dag.status import TaskStatus
from ppacer.db import dagruns as runs_db
from ppacer.db import dagruntasks as tasks_db
from ppacer.db.dags import sync_dags
from ppacer.db.engine import open_scheduler_db
from ppacer.scheduler.leases import LeaseKeeper
from ppacer.scheduler.task_scheduler import TaskScheduler
from ppacer.timeutils import ManualClock, format_ts

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL_S = 30.0
GRACE_S = 10.0
ATTEMPT = ("etl", "2026-01-01T00:00:00.000000UTC+00:00", "load", 0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def keeper(clock: ManualClock) -> LeaseKeeper:
    return LeaseKeeper(clock, lease_timeout_s=TTL_S, timeout_grace_s=GRACE_S)


def test_a_lease_expires_exactly_when_the_clock_passes_its_expiry_and_not_before(
    clock: ManualClock, keeper: LeaseKeeper
) -> None:
    keeper.seen("x")
    lease = keeper.grant(ATTEMPT, "x", timeout_s=600)
    assert keeper.next_expiry() == clock.monotonic() + TTL_S
    clock.advance(TTL_S - 0.001)
    assert keeper.pop_expired() == []
    assert len(keeper) == 1 and keeper.executors["x"].leases == {lease.token}
    clock.advance(0.001)
    assert keeper.pop_expired() == [lease]
    assert len(keeper) == 0 and keeper.executors["x"].leases == set()
    assert keeper.for_attempt(ATTEMPT) is None


def test_heartbeats_renew_a_lease_but_never_past_the_attempts_timeout(
    clock: ManualClock, keeper: LeaseKeeper
) -> None:
    timeout_s = 100.0
    keeper.seen("x")
    lease = keeper.grant(ATTEMPT, "x", timeout_s=timeout_s)
    deadline = clock.monotonic() + timeout_s + GRACE_S
    beat_s = TTL_S / 3
    while clock.monotonic() + beat_s < deadline:
        clock.advance(beat_s)
        assert keeper.heartbeat("x", [lease.token], running=1, capacity=4) == []
        assert lease.expires == min(clock.monotonic() + TTL_S, deadline)
        assert keeper.pop_expired() == []
    clock.advance(deadline - clock.monotonic())
    assert keeper.pop_expired() == [lease]
    # The attempt ran past its timeout: that is the reason, not a lost executor.
    reason = keeper.lost_reason(lease, timeout_s)
    assert reason.startswith("TimeoutError:") and "timeout of 100 s" in reason
    # A heartbeat after that learns the lease is gone.
    assert keeper.heartbeat("x", [lease.token], running=1, capacity=4) == [lease.token]


def test_heartbeats_report_the_tokens_an_executor_no_longer_holds(
    clock: ManualClock, keeper: LeaseKeeper
) -> None:
    keeper.seen("x")
    keeper.seen("y")
    mine = keeper.grant(ATTEMPT, "x", timeout_s=600)
    theirs = keeper.grant((*ATTEMPT[:3], 1), "y", timeout_s=600)
    released = keeper.grant((*ATTEMPT[:2], "other", 0), "x", timeout_s=600)
    keeper.release(released.attempt)
    lost = keeper.heartbeat("x", [mine.token, theirs.token, released.token, "made-up"], 2, 4)
    assert lost == [theirs.token, released.token, "made-up"]
    assert keeper.executors["x"].running == 2 and keeper.executors["x"].capacity == 4
    # An expired lease is lost too, even if the executor beats right after.
    clock.advance(TTL_S)
    assert keeper.heartbeat("x", [mine.token], 1, 4) == [mine.token]


def test_an_anonymous_client_keeps_its_lease_until_the_task_timeout(
    clock: ManualClock, keeper: LeaseKeeper
) -> None:
    timeout_s = 120.0
    lease = keeper.grant(ATTEMPT, None, timeout_s=timeout_s)
    assert lease.executor == "anonymous"
    clock.advance(timeout_s + GRACE_S - 0.001)
    assert keeper.pop_expired() == []
    clock.advance(0.001)
    assert keeper.pop_expired() == [lease]


def test_an_executor_that_stops_beating_is_named_in_the_reason(
    clock: ManualClock, keeper: LeaseKeeper
) -> None:
    keeper.seen("x")
    lease = keeper.grant(ATTEMPT, "x", timeout_s=600)
    clock.advance(TTL_S)
    assert keeper.pop_expired() == [lease]
    reason = keeper.lost_reason(lease, 600)
    assert reason.startswith("executor lost: executor x stopped renewing the lease on etl/load")


def test_releasing_a_task_drops_the_leases_of_its_attempts_only(keeper: LeaseKeeper) -> None:
    keeper.seen("x")
    keeper.grant(ATTEMPT, "x", timeout_s=600)
    keeper.grant((*ATTEMPT[:3], 1), "x", timeout_s=600)
    other = keeper.grant((*ATTEMPT[:2], "other", 0), "x", timeout_s=600)
    keeper.release_task(*ATTEMPT[:3])
    assert len(keeper) == 1 and keeper.executors["x"].leases == {other.token}


def test_executors_are_listed_most_recently_heard_first(
    clock: ManualClock, keeper: LeaseKeeper
) -> None:
    keeper.seen("old")
    clock.advance(60)
    keeper.seen("new")
    assert [e.name for e in keeper.view()] == ["new", "old"]
    assert [e.name for e in keeper.view(connected_within_s=30)] == ["new"]
    first = keeper.executors["old"].first_seen
    keeper.seen("old")
    assert keeper.executors["old"].first_seen == first
    assert keeper.executors["old"].last_seen == clock.now()


# ---------------------------------------------------------------- through the task scheduler


class Noop(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> None:
        return None


def test_the_scheduler_fails_an_attempt_whose_lease_the_clock_let_expire(
    tmp_path: Path, clock: ManualClock
) -> None:
    dag = ppacer.Dag("etl", root=Node(Noop("load"), TaskConfig(retries=1))).done()
    registry = ppacer.Registry([dag])
    engine = open_scheduler_db(str(tmp_path / "s.db"))
    tasks = TaskScheduler(
        engine, registry, clock, "test", None, lease_timeout_s=TTL_S, timeout_grace_s=GRACE_S
    )
    exec_ts = format_ts(T0)
    with tasks.transaction() as conn:
        sync_dags(conn, registry.values(), tasks.now_ts(), "test")
        run_id = runs_db.insert_dag_run(conn, "etl", exec_ts, tasks.now_ts(), "test")
        row = runs_db.read_dag_run(conn, run_id)
        assert row is not None
        tasks.submit(conn, row, new_params={})

    async def pop() -> TaskToExec | None:
        return await tasks.pop(0, "x")

    item = asyncio.run(pop())
    assert item is not None and item.lease_token is not None
    assert tasks.lease_count() == 1 and tasks.is_active("etl", exec_ts)
    clock.advance(TTL_S - 0.001)
    tasks.expire_leases()
    assert tasks.lease_count() == 1
    clock.advance(0.001)
    tasks.expire_leases()
    assert tasks.lease_count() == 0
    with engine.connect() as conn:
        (attempt,) = tasks_db.read_dag_run_tasks(conn, "etl", exec_ts)
        errors = tasks_db.read_task_errors(conn, "etl", exec_ts)
    assert attempt.status is TaskStatus.FAILED_PENDING_RETRY
    assert "executor lost: executor x" in errors[("load", 0)]
    tasks.stop()
    engine.dispose()
