"""Status reports: retried while the scheduler is away, batched when they pile up, never lost."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from ppacer.api.models import StatusReport, TaskToExec
from ppacer.dag.status import TaskStatus
from ppacer.errors import ConflictError, NotFoundError, PpacerError, SchedulerUnavailableError
from ppacer.executor.reporter import Reporter
from ppacer.timeutils import monotonic
from tests.conftest import wait_for

EXEC_TS = "2024-03-11T22:50:20.000000UTC+00:00"


class FakeScheduler:
    """Takes reports while ``up`` is set; otherwise it cannot be reached."""

    def __init__(self, *, batches: bool = True) -> None:
        self.up = threading.Event()
        self.up.set()
        self.batches = batches
        self.lock = threading.Lock()
        self.received: list[StatusReport] = []
        self.requests: list[int] = []  # reports per request that went through
        self.failures = 0
        self.refuse: set[str] = set()  # task ids answered 409
        # While set, a request waits for `release` (to let reports pile up).
        self.hold = threading.Event()
        self.release = threading.Event()

    def _take(self, reports: list[StatusReport]) -> list[PpacerError | None]:
        if self.hold.is_set():
            self.release.wait(10)
        with self.lock:
            if not self.up.is_set():
                self.failures += 1
                raise SchedulerUnavailableError("scheduler at fake unreachable: refused")
            self.requests.append(len(reports))
            answers: list[PpacerError | None] = []
            for r in reports:
                if r.task_id in self.refuse:
                    answers.append(ConflictError("stale lease"))
                else:
                    self.received.append(r)
                    answers.append(None)
            return answers

    def report(self, report: StatusReport) -> None:
        (error,) = self._take([report])
        if error is not None:
            raise error

    def report_many(self, reports: list[StatusReport]) -> list[PpacerError | None]:
        if not self.batches:
            raise NotFoundError("no such route")
        return self._take(reports)

    def delivered(self) -> list[str]:
        with self.lock:
            return [r.task_id for r in self.received]


def report(task_id: str, status: TaskStatus = TaskStatus.SUCCESS) -> StatusReport:
    return StatusReport.for_task(TaskToExec("d", EXEC_TS, task_id, 0), status)


@pytest.fixture
def scheduler() -> FakeScheduler:
    return FakeScheduler()


def start(scheduler: FakeScheduler) -> Reporter:
    reporter = Reporter(scheduler, "test")  # type: ignore[arg-type]
    reporter.start()
    return reporter


def test_reports_made_while_the_scheduler_is_away_arrive_in_order_when_it_is_back(
    scheduler, caplog
):
    caplog.set_level(logging.INFO, logger="ppacer.executor")
    scheduler.up.clear()
    reporter = start(scheduler)
    for i in range(3):
        reporter.put(report(f"t{i}"))
    wait_for(lambda: scheduler.failures >= 3, what="reports to be retried")
    scheduler.up.set()
    wait_for(lambda: len(scheduler.delivered()) == 3, what="every report to arrive")
    reporter.stop(monotonic() + 5)
    assert scheduler.delivered() == ["t0", "t1", "t2"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("cannot report") for m in messages) == 1  # once per outage
    assert "status reports go through again" in messages


def test_reports_that_pile_up_go_in_one_request(scheduler):
    scheduler.hold.set()
    reporter = start(scheduler)
    reporter.put(report("first"))
    for i in range(5):
        reporter.put(report(f"t{i}"))
    scheduler.hold.clear()
    scheduler.release.set()
    reporter.stop(monotonic() + 5)
    assert scheduler.delivered() == ["first", "t0", "t1", "t2", "t3", "t4"]
    assert scheduler.requests in ([1, 5], [6])


def test_against_a_scheduler_without_batches_reports_go_one_by_one(scheduler):
    scheduler.batches = False
    scheduler.hold.set()
    reporter = start(scheduler)
    for i in range(4):
        reporter.put(report(f"t{i}"))
    scheduler.hold.clear()
    scheduler.release.set()
    reporter.stop(monotonic() + 5)
    assert scheduler.delivered() == ["t0", "t1", "t2", "t3"]
    assert set(scheduler.requests) == {1}


def test_a_refused_report_is_logged_and_not_retried(scheduler, caplog):
    scheduler.refuse.add("stale")
    reporter = Reporter(scheduler, "test")  # type: ignore[arg-type]
    assert reporter.send(report("stale", TaskStatus.RUNNING)) is False
    assert reporter.send(report("fresh", TaskStatus.RUNNING)) is True
    assert scheduler.delivered() == ["fresh"]
    assert any("refused RUNNING" in r.getMessage() for r in caplog.records)


def test_stop_gives_up_at_its_deadline_with_an_error_logged(scheduler, caplog):
    scheduler.up.clear()
    reporter = start(scheduler)
    reporter.put(report("lost"))
    wait_for(lambda: scheduler.failures >= 1, what="the report to be tried")
    started = monotonic()
    reporter.stop(monotonic())
    assert monotonic() - started < 10
    assert scheduler.delivered() == []
    assert any(r.getMessage().startswith("giving up reporting") for r in caplog.records)


def test_a_report_sent_inline_waits_for_the_scheduler(scheduler):
    scheduler.up.clear()
    reporter = Reporter(scheduler, "test")  # type: ignore[arg-type]
    result: list[Any] = []
    sender = threading.Thread(target=lambda: result.append(reporter.send(report("t"))))
    sender.start()
    wait_for(lambda: scheduler.failures >= 2, what="the report to be retried")
    scheduler.up.set()
    sender.join(10)
    assert result == [True] and scheduler.delivered() == ["t"]
