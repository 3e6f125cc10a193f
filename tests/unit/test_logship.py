"""The log shipper: numbering, caps, buffering and spilling, at-least-once delivery, no idle cost.

The scheduler here is a stand-in that stores records by (attempt, seq) as the
real one does, and can be made unreachable or lose its answers; the real
scheduler is in tests/e2e/test_log_shipping_executor.py.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ppacer.api import schemas as s
from ppacer.api.models import LogRecord
from ppacer.dag.task import task_logger
from ppacer.errors import ConflictError, SchedulerUnavailableError
from ppacer.executor.logship import LogShipper, LogShipping, attempt_key
from ppacer.executor.spool import SpoolQueue
from tests.conftest import wait_for

EXEC_TS = "2024-03-11T22:50:20.000000UTC+00:00"


class Scheduler:
    """Stores shipped records once per (attempt, seq); can be down, or lose its answers."""

    url = "http://scheduler.test"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stored: dict[tuple[str, str, str, int, int], LogRecord] = {}
        self.requests = 0
        self.up = threading.Event()
        self.up.set()
        self.lose_answers = 0
        self.refuse: Exception | None = None

    def ship_logs(self, executor: str, records: list[LogRecord]) -> s.TaskLogsStoredOut:
        with self.lock:
            self.requests += 1
            if self.refuse is not None:
                raise self.refuse
            if not self.up.is_set():
                raise SchedulerUnavailableError("scheduler down")
            stored = 0
            for r in records:
                key = (r.dag_id, r.exec_ts, r.task_id, r.retry, r.seq)
                if key not in self.stored:
                    self.stored[key] = r
                    stored += 1
            if self.lose_answers:
                self.lose_answers -= 1
                raise SchedulerUnavailableError("answer lost")
            return s.TaskLogsStoredOut(stored=stored, duplicates=len(records) - stored, rejected=[])

    def lines(self, task_id: str = "t") -> list[str]:
        with self.lock:
            rows = sorted((k[4], r.message) for k, r in self.stored.items() if k[2] == task_id)
        return [m for _, m in rows]


@pytest.fixture
def scheduler() -> Scheduler:
    return Scheduler()


@pytest.fixture
def make_shipper(scheduler: Scheduler) -> Iterator[object]:
    made: list[LogShipper] = []

    def make(**config: object) -> tuple[LogShipper, logging.Logger]:
        shipper = LogShipper(scheduler, "test-executor", LogShipping(**config))  # type: ignore[arg-type]
        base = logging.Logger("ppacer.task")
        base.addHandler(shipper)
        made.append(shipper)
        return shipper, base

    yield make
    for shipper in made:
        shipper.shutdown()


def attempt_logger(base: logging.Logger, task_id: str = "t", retry: int = 0):
    return task_logger(base, "d", EXEC_TS, task_id, retry)


def test_records_of_each_attempt_are_numbered_from_zero(make_shipper, scheduler) -> None:
    shipper, base = make_shipper()
    a, b = attempt_logger(base, "a"), attempt_logger(base, "b")
    for n in range(3):
        a.info("a%d", n)
        b.info("b%d", n, extra={"n": n})
    assert shipper.finish_attempt(attempt_key("d", EXEC_TS, "a", 0)) == 3
    assert shipper.finish_attempt(attempt_key("d", EXEC_TS, "b", 0)) == 3
    assert scheduler.lines("a") == ["a0", "a1", "a2"]
    assert scheduler.lines("b") == ["b0", "b1", "b2"]
    seqs = sorted(k[4] for k in scheduler.stored if k[2] == "b")
    assert seqs == [0, 1, 2]
    assert scheduler.stored[("d", EXEC_TS, "b", 0, 2)].attributes == {"n": 2}


def test_an_attempt_that_logs_nothing_costs_no_request(make_shipper, scheduler) -> None:
    shipper, _ = make_shipper()
    shipper.start_attempt(attempt_key("d", EXEC_TS, "t", 0))
    assert shipper.finish_attempt(attempt_key("d", EXEC_TS, "t", 0)) == 0
    assert shipper.finish_attempt(attempt_key("d", EXEC_TS, "never", 0)) == 0
    assert scheduler.requests == 0


def test_long_lines_are_cut_with_a_note_and_lines_past_the_cap_are_counted(
    make_shipper, scheduler
) -> None:
    shipper, base = make_shipper(max_line_chars=10, max_lines=3)
    logger = attempt_logger(base)
    logger.info("x" * 25)
    for n in range(6):
        logger.info("line %d", n)
    assert shipper.finish_attempt(attempt_key("d", EXEC_TS, "t", 0)) == 4
    lines = scheduler.lines()
    assert lines[0] == "x" * 10 + " [cut: 15 more characters]"
    assert lines[1:3] == ["line 0", "line 1"]
    assert lines[3].startswith("4 more lines of this attempt were not shipped: 4 past the limit")
    assert "executor.max_log_lines" in lines[3]


def test_a_resent_batch_is_stored_once(make_shipper, scheduler) -> None:
    scheduler.lose_answers = 1  # stored, but the executor never hears so: it sends again
    shipper, base = make_shipper()
    logger = attempt_logger(base)
    for n in range(5):
        logger.info("line %d", n)
    shipper.finish_attempt(attempt_key("d", EXEC_TS, "t", 0))
    assert scheduler.lines() == [f"line {n}" for n in range(5)]
    assert shipper.stored + shipper.duplicates >= 5
    assert shipper.duplicates >= 1


def test_records_wait_for_an_unreachable_scheduler_spilling_to_disk_in_order(
    make_shipper, scheduler, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ppacer.executor")
    scheduler.up.clear()
    spool = tmp_path / "spool"
    shipper, base = make_shipper(buffer_records=50, spool_dir=str(spool))
    logger = attempt_logger(base)
    for n in range(1000):
        logger.info("line %d", n)
    key = attempt_key("d", EXEC_TS, "t", 0)
    # Bounded: the final wait gives up while the scheduler is away.
    assert shipper.finish_attempt(key, wait_s=0.05) == 1000
    assert shipper.pending >= 900
    assert shipper.spooled >= 900
    assert list(spool.glob("spool-*.jsonl"))
    scheduler.up.set()
    assert shipper.drain(20)
    assert scheduler.lines() == [f"line {n}" for n in range(1000)]
    # The spool file is gone once read; one warning for the outage, one line when it ends.
    assert not list(spool.glob("spool-*.jsonl"))
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot ship task logs" in m for m in messages) == 1
    assert sum("shipped again" in m for m in messages) == 1


def test_a_scheduler_without_a_logs_db_makes_the_shipper_stop_waiting(
    make_shipper, scheduler
) -> None:
    scheduler.refuse = ConflictError("this scheduler keeps no task logs")
    shipper, base = make_shipper(final_wait_s=30)
    attempt_logger(base).info("nowhere to go")
    wait_for(lambda: scheduler.requests, what="the refused request")
    shipper.finish_attempt(attempt_key("d", EXEC_TS, "t", 0))  # at once, not after 30 s
    attempt_logger(base).info("not even sent")
    assert shipper.pending == 0
    assert scheduler.requests == 1


def test_numbering_resumes_where_another_process_stopped(make_shipper, scheduler) -> None:
    shipper, base = make_shipper()
    key = attempt_key("d", EXEC_TS, "t", 0)
    shipper.start_attempt(key, first_seq=7)  # a Dask worker shipped 0..6
    attempt_logger(base).info("the executor's own line")
    assert shipper.finish_attempt(key) == 8
    assert ("d", EXEC_TS, "t", 0, 7) in scheduler.stored


def test_attributes_that_are_not_json_are_shipped_as_text(make_shipper, scheduler) -> None:
    shipper, base = make_shipper()
    attempt_logger(base).info("odd", extra={"path": Path("/x"), "ok": 1})
    shipper.finish_attempt(attempt_key("d", EXEC_TS, "t", 0))
    (record,) = scheduler.stored.values()
    assert record.attributes == {"path": "/x", "ok": 1}


def test_logging_closing_every_handler_does_not_stop_the_shipping(make_shipper, scheduler):
    shipper, base = make_shipper()
    logging.shutdown([lambda: shipper])  # what dictConfig does to existing handlers
    attempt_logger(base).info("still shipped")
    shipper.finish_attempt(attempt_key("d", EXEC_TS, "t", 0))
    assert scheduler.lines() == ["still shipped"]


def test_spool_queue_keeps_order_across_memory_and_file(tmp_path: Path) -> None:
    queue = SpoolQueue(max_records=3, max_chars=10_000, spool_dir=str(tmp_path))

    def rec(n: int) -> LogRecord:
        return LogRecord("d", EXEC_TS, "t", 0, n, EXEC_TS, "INFO", f"m{n}")

    for n in range(10):
        queue.put(rec(n))
    assert queue.is_spooling and len(queue) == 10
    first = queue.take(4, 1_000_000)
    queue.put(rec(10))  # spooled after the others: order holds
    rest = queue.take(100, 1_000_000)
    assert [r.seq for r in first + rest] == list(range(11))
    assert not queue.is_spooling and queue.path is None
    queue.put(rec(11))  # back in memory
    assert not queue.is_spooling
    queue.close()
