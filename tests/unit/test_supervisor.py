"""The supervisor: heartbeats at the pace of the shortest lease, timeouts, lost leases."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Iterator

import pytest

from ppacer import TaskConfig
from ppacer.api.models import StatusReport, TaskToExec
from ppacer.dag.status import TaskStatus
from ppacer.errors import SchedulerUnavailableError
from ppacer.executor.supervisor import RUN_DEADLINE_HEARTBEAT_S, Supervisor
from ppacer.timeutils import monotonic
from tests.conftest import wait_for

EXEC_TS = "2024-03-11T22:50:20.000000UTC+00:00"


class FakeScheduler:
    """Answers heartbeats: records them, can hold one in flight, fail, or take a lease back."""

    url = "http://fake"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.beats: list[tuple[float, list[str]]] = []
        self.hold = threading.Event()  # while set, a heartbeat waits for `release`
        self.release = threading.Event()
        self.in_flight = threading.Event()
        self.fail_next = 0
        self.lost: set[str] = set()

    def heartbeat(
        self, executor: str, lease_tokens: list[str], running: int = 0, capacity: int | None = None
    ) -> list[str]:
        if self.hold.is_set():
            self.in_flight.set()
            self.release.wait(10)
        with self.lock:
            self.beats.append((monotonic(), list(lease_tokens)))
            if self.fail_next:
                self.fail_next -= 1
                raise SchedulerUnavailableError("scheduler at fake unreachable")
            return [t for t in lease_tokens if t in self.lost]

    def count(self, token: str | None = None) -> int:
        with self.lock:
            return sum(token is None or token in tokens for _, tokens in self.beats)


class FakeReporter:
    def __init__(self) -> None:
        self.reports: list[StatusReport] = []
        # Tokens of final reports not delivered yet (the real one's retry while away).
        self.pending: list[str] = []

    def put(self, report: StatusReport) -> None:
        self.reports.append(report)

    def pending_tokens(self) -> list[str]:
        return list(self.pending)


@pytest.fixture
def scheduler() -> FakeScheduler:
    return FakeScheduler()


@pytest.fixture
def reporter() -> FakeReporter:
    return FakeReporter()


@pytest.fixture
def supervisor(scheduler: FakeScheduler, reporter: FakeReporter) -> Iterator[Supervisor]:
    s = Supervisor(scheduler, "test", reporter, capacity=4, running=lambda: 1)  # type: ignore[arg-type]
    yield s
    s.stop()


def task(token: str, lease_timeout_s: float | None = 30.0) -> TaskToExec:
    return TaskToExec("d", EXEC_TS, token, 0, lease_token=token, lease_timeout_s=lease_timeout_s)


def test_leases_are_renewed_every_third_of_their_length(supervisor, scheduler):
    supervisor.start()
    supervisor.watch(task("a", lease_timeout_s=0.3), TaskConfig(), has_run_deadline=False)
    # Each beat within 0.1 s of the last: three of them come well before 10 s (the default pace).
    wait_for(lambda: scheduler.count("a") >= 3, timeout_s=5, what="three heartbeats of lease a")


def test_a_run_with_a_deadline_is_heartbeat_at_least_every_two_seconds(supervisor):
    attempt = supervisor.watch(task("a", lease_timeout_s=60), TaskConfig(), has_run_deadline=True)
    assert attempt.heartbeat_s == RUN_DEADLINE_HEARTBEAT_S


def test_a_short_lease_that_starts_during_a_heartbeat_is_not_left_to_the_old_pace(
    supervisor, scheduler
):
    scheduler.hold.set()
    supervisor.start()
    scheduler.in_flight.wait(10)  # the first heartbeat (no attempts) is in flight
    supervisor.watch(task("short", lease_timeout_s=0.3), TaskConfig(), has_run_deadline=False)
    scheduler.hold.clear()
    scheduler.release.set()
    # Planned from the old pace, the next beat would come in 10 s and the lease be lost.
    wait_for(lambda: scheduler.count("short") >= 1, timeout_s=3, what="a heartbeat of the lease")


def test_a_failed_heartbeat_is_retried_before_the_regular_pace(supervisor, scheduler):
    scheduler.fail_next = 2
    supervisor.start()
    wait_for(lambda: scheduler.count() >= 3, timeout_s=3, what="two retries of the heartbeat")


def test_an_attempt_whose_lease_was_lost_is_stopped_and_not_reported(
    supervisor, scheduler, reporter, caplog
):
    scheduler.lost.add("gone")
    attempt = supervisor.watch(
        task("gone", lease_timeout_s=0.3), TaskConfig(), has_run_deadline=False
    )
    attempt.future = concurrent.futures.Future()  # a coroutine's, which can be cancelled
    supervisor.start()
    wait_for(lambda: attempt.stop_reason, timeout_s=5, what="the lease to be found lost")
    assert attempt.stop_reason == "executor lost its lease"
    assert attempt.future.cancelled()
    assert not attempt.claim()  # the runner's late result is dropped
    assert reporter.reports == []  # the scheduler failed it already


def test_a_thread_task_past_its_timeout_is_reported_failed(supervisor, reporter):
    attempt = supervisor.watch(
        task("slow"), TaskConfig(timeout_s=0.05, isolation="thread"), has_run_deadline=False
    )
    supervisor.start()
    wait_for(lambda: reporter.reports, timeout_s=5, what="the timeout report")
    (failed,) = reporter.reports
    assert (failed.task_id, failed.status) == ("slow", TaskStatus.FAILED)
    assert failed.task_error is not None and failed.task_error.startswith("TimeoutError:")
    assert not attempt.claim()


def test_abandon_stops_what_it_can_and_leaves_threads_to_the_scheduler(supervisor, caplog):
    caplog.set_level(logging.WARNING, logger="ppacer.executor")
    in_thread = supervisor.watch(task("thread"), TaskConfig(), has_run_deadline=False)
    coroutine = supervisor.watch(task("coro"), TaskConfig(), has_run_deadline=False)
    coroutine.future = concurrent.futures.Future()
    # Its runner ends once the coroutine is cancelled.
    coroutine.future.add_done_callback(lambda _: supervisor.forget(coroutine))
    supervisor.abandon("executor stopped", wait_s=10)
    assert coroutine.future.cancelled() and coroutine.stop_reason == "executor stopped"
    assert coroutine.claim()  # its runner still reports it FAILED
    assert not in_thread.claim()  # left RUNNING: nothing is reported for it
    assert any("left RUNNING for the scheduler" in r.getMessage() for r in caplog.records)


def test_the_lease_of_an_attempt_whose_final_report_waits_is_still_heartbeated(
    supervisor, scheduler, reporter
):
    """A report the scheduler has not taken yet keeps its attempt's lease alive; then no more."""
    reporter.pending.append("ended-but-unreported")
    supervisor.start()
    supervisor.watch(task("a", lease_timeout_s=0.3), TaskConfig(), has_run_deadline=False)
    wait_for(
        lambda: scheduler.count("ended-but-unreported") >= 2,
        timeout_s=5,
        what="heartbeats of the waiting report's lease",
    )
    reporter.pending.clear()  # delivered
    after = scheduler.count("ended-but-unreported")
    beats_of_a = scheduler.count("a")
    wait_for(lambda: scheduler.count("a") >= beats_of_a + 3, timeout_s=5, what="more heartbeats")
    assert scheduler.count("ended-but-unreported") <= after + 1  # one may have been in flight
