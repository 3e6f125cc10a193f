"""A full disk under the logs DB, and under the scheduler DB: work goes on or waits, none is lost.

Real tmpfs file systems (a few MiB, mounted by the test: root, as in CI), filled
to the last byte by a file the test then deletes; a real scheduler and executor
on loopback. The oracle of what really ran is a file on the normal disk every
task appends a line to.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

import ppacer
from ppacer.errors import SchedulerUnavailableError
from ppacer.local import LocalRunner
from ppacer.scheduler.config import Config
from tests.conftest import wait_for
from tests.reliability.faults import Executions, append_line, fill, metric, tmpfs

pytestmark = pytest.mark.reliability

DROPPED = "ppacer_task_log_lines_dropped_total"
LINES = 150


class Chatty(ppacer.BaseTask):
    """Logs LINES lines of half a KiB (that fills a few MiB fast)."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        for i in range(LINES):
            ctx.logger.info("line %d of %s %s", i, self.task_id, "x" * 500)


class Step(ppacer.BaseTask):
    """Records that it ran (the file named by PPACER_TEST_RAN), then takes a little while."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        append_line(
            os.environ["PPACER_TEST_RAN"], f"{ctx.exec_ts.isoformat()} {self.task_id} {ctx.retry}\n"
        )
        time.sleep(0.15)


def _finished(runner: LocalRunner, run_id: int) -> dict[str, Any] | None:
    run = runner.client.get_dag_run(run_id)
    return run if run["status"] in ("SUCCESS", "FAILED") else None


def _records(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def test_a_full_logs_db_drops_lines_counted_and_logged_once_and_the_tasks_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ppacer.scheduler")
    root = ppacer.Node(Chatty("first"))
    root.next_async_and_merge([Chatty(f"w{i}") for i in range(6)], Chatty("last"))
    registry = ppacer.Registry([ppacer.Dag("chatty", root=root).done()])
    # Room for the second run once space is back: its lines, their index and the WAL.
    with tmpfs(tmp_path / "small", "16m") as small:
        runner = LocalRunner(
            registry, str(tmp_path / "scheduler.db"), str(small / "logs.db"), port=0
        )
        runner.start()
        try:
            filler = fill(small)
            full_run = runner.client.trigger_dag_run("chatty")["runId"]
            done = wait_for(lambda: _finished(runner, full_run), 60, "the run on a full disk")
            assert done["status"] == "SUCCESS", done  # the attempts went on
            assert {t["status"] for t in done["tasks"]} == {"SUCCESS"}
            dropped = metric(httpx2.get(f"{runner.url}/metrics").text, DROPPED)
            assert dropped > 0
            assert len(_records(caplog, "task logs DB full")) == 1  # logged once
            # /healthz says why (the scheduler's own database is fine).
            health = httpx2.get(f"{runner.url}/healthz")
            assert health.status_code == 503
            assert health.json()["checks"]["db"] == "ok"
            assert "disk" in health.json()["checks"]["logsDb"]

            filler.unlink()  # space again: lines are stored again, none dropped
            run_id = runner.client.trigger_dag_run("chatty")["runId"]
            done = wait_for(
                lambda: _finished(runner, run_id), 60, "the run after the space came back"
            )
            assert done["status"] == "SUCCESS"

            def stored() -> bool:
                page = runner.client.get_task_logs(run_id, "last", limit=LINES + 1)
                return len(page.records) == LINES

            wait_for(stored, 30, "the lines of the run after the space came back")
            after = metric(httpx2.get(f"{runner.url}/metrics").text, DROPPED)
            assert after == dropped
            assert httpx2.get(f"{runner.url}/healthz").status_code == 200
            assert len(_records(caplog, "stores lines again")) == 1
            assert len(_records(caplog, "task logs DB full")) == 1
        finally:
            runner.stop()


def test_a_full_scheduler_db_delays_work_says_why_and_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="ppacer.scheduler")
    ran = Executions(tmp_path / "ran.txt")
    monkeypatch.setenv("PPACER_TEST_RAN", str(ran.path))
    tasks = 12
    root = ppacer.Node(Step("t0"))
    node = root
    for i in range(1, tasks):
        node = node.next(Step(f"t{i}"))
    registry = ppacer.Registry([ppacer.Dag("chain", root=root).done()])
    config = Config(db_wait_s=0.2, lease_timeout_s=4.0)
    with tmpfs(tmp_path / "small", "8m") as small:
        runner = LocalRunner(
            registry, str(small / "scheduler.db"), str(tmp_path / "logs.db"), port=0, config=config
        ).start()
        try:
            run_id = runner.client.trigger_dag_run("chain")["runId"]

            def successes() -> int:
                tasks_ = runner.client.get_dag_run(run_id)["tasks"]
                return sum(t["status"] == "SUCCESS" for t in tasks_)

            wait_for(lambda: successes() >= 2, 30, "2 tasks to succeed")
            filler = fill(small)

            def health() -> tuple[int, dict[str, Any]]:
                answer = httpx2.get(f"{runner.url}/healthz", timeout=1.0)  # answers at once
                return answer.status_code, answer.json()

            code, body = wait_for(lambda: (h := health())[0] == 503 and h, 20, "/healthz 503")
            assert "disk" in body["checks"]["db"], body  # says why: the disk is full
            # While the disk stays full, longer than a lease: it says so all along, takes no
            # change (503: retry later), and expires no lease.
            deadline = time.monotonic() + 1.5 * config.lease_timeout_s
            while time.monotonic() < deadline:
                code, body = health()
                assert code == 503 and "disk" in body["checks"]["db"], body
                time.sleep(0.2)
            with pytest.raises(SchedulerUnavailableError):
                runner.client.trigger_dag_run("chain", {"while": "full"})
            assert len(_records(caplog, "database unavailable")) == 1  # logged once

            filler.unlink()
            wait_for(lambda: health()[0] == 200, 30, "/healthz to recover")
            done = wait_for(lambda: _finished(runner, run_id), 60, "the run to finish")
            assert done["status"] == "SUCCESS", done
            assert [(t["taskId"], t["retry"], t["status"]) for t in done["tasks"]] == [
                (f"t{i}", 0, "SUCCESS") for i in range(tasks)
            ]
            assert not [t for t in done["tasks"] if t["error"]]
            per_task = ran.per_task()
            assert sorted(task for _, task in per_task) == sorted(f"t{i}" for i in range(tasks))
            assert set(per_task.values()) == {1}, per_task  # every task ran exactly once
            assert len(_records(caplog, "database available again")) == 1
        finally:
            runner.stop()
