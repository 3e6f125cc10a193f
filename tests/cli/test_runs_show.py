"""``ppacer runs show``: per attempt, the queue wait and the run time apart.

A real scheduler with no executor at first: the first task waits (and says
why); an executor comes and takes it while it is held (running); then a task
fails once and is retried. Each row's figures are the API's timestamps
subtracted: scheduled -> taken by an executor, taken -> ended.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

import ppacer
from ppacer.cli.runs import format_duration
from ppacer.executor.executor import Executor
from ppacer.timeutils import parse_ts
from tests.conftest import wait_for

_GATE = threading.Event()
_FAILED_ONCE = threading.Event()


@ppacer.task
def held(ctx: ppacer.TaskContext) -> None:
    """Runs until the test opens the gate."""
    assert _GATE.wait(60)


@ppacer.task
def flaky(ctx: ppacer.TaskContext) -> None:
    """Fails its first attempt."""
    if not _FAILED_ONCE.is_set():
        _FAILED_ONCE.set()
        raise RuntimeError("first attempt fails")


def _registry() -> ppacer.Registry:
    root = ppacer.Node(held)
    root.next(flaky, ppacer.TaskConfig(retries=1))
    return ppacer.Registry([ppacer.Dag("timed", root=root).done()])


def _rows(output: str) -> dict[tuple[str, str], list[str]]:
    """The table's rows by (task, retry): its cells, stripped."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) == 8 and cells[1].isdigit():
            rows[(cells[0], cells[1])] = cells
    return rows


def _seconds(start: str, end: str) -> float:
    return (parse_ts(end) - parse_ts(start)).total_seconds()


def _show(ppacer_cli: Any, url: str, run_id: int) -> tuple[dict[str, Any], dict[Any, list[str]]]:
    result = ppacer_cli("runs", "show", str(run_id), "--url", url)
    assert result.exit_code == 0, result.output
    details = json.loads(ppacer_cli("runs", "show", str(run_id), "--url", url, "--json").output)
    return details, _rows(result.output)


def test_runs_show_gives_each_attempts_queue_wait_and_run_time_apart(start_local, ppacer_cli):
    _GATE.clear()
    _FAILED_ONCE.clear()
    dags = _registry()
    runner = start_local(dags, with_executor=False)
    url = runner.url
    run_id = runner.client.trigger_dag_run("timed")["runId"]

    # No executor yet: the first attempt waits, and the table says why.
    def queued() -> dict[Any, list[str]] | None:
        details, rows = _show(ppacer_cli, url, run_id)
        return rows if details["tasks"][0]["waitingReason"] else None

    rows = wait_for(queued, what="the first attempt to wait for an executor")
    header = ppacer_cli("runs", "show", str(run_id), "--url", url).output
    assert "queue wait" in header and "run time" in header
    _, _, status, _, wait, ran, executor, why = rows[("held", "0")]
    assert (status, wait, ran, executor) == ("SCHEDULED", "waiting", "", "")
    assert "no connected executor serves queue 'default'" in why, why

    worker = Executor(runner.new_client(), dags, name="timer", poll_wait_s=1.0).start()
    try:

        def running() -> tuple[dict[str, Any], dict[Any, list[str]]] | None:
            details, rows = _show(ppacer_cli, url, run_id)
            # (The text and the JSON are two calls: wait until both show it running.)
            is_running = details["tasks"][0]["status"] == rows[("held", "0")][2] == "RUNNING"
            return (details, rows) if is_running else None

        details, rows = wait_for(running, what="the first attempt to run")
        attempt = details["tasks"][0]
        _, _, status, _, wait, ran, executor, _ = rows[("held", "0")]
        assert (status, ran, executor) == ("RUNNING", "running", "timer")
        assert wait == format_duration(_seconds(attempt["insertTs"], attempt["startTs"]))

        _GATE.set()
        wait_for(lambda: runner.client.get_dag_run(run_id)["status"] == "SUCCESS", what="the run")
        details, rows = _show(ppacer_cli, url, run_id)
    finally:
        _GATE.set()
        assert worker.stop(10)

    attempts = {(t["taskId"], str(t["retry"])): t for t in details["tasks"]}
    assert set(rows) == set(attempts) == {("held", "0"), ("flaky", "0"), ("flaky", "1")}
    for key, attempt in attempts.items():
        _, _, status, _, wait, ran, executor, _ = rows[key]
        assert status == attempt["status"] and executor == "timer"
        # Apart: scheduled -> taken, then taken -> ended; together the attempt's whole span.
        queue_s = _seconds(attempt["insertTs"], attempt["startTs"])
        run_s = _seconds(attempt["startTs"], attempt["statusUpdateTs"])
        assert (wait, ran) == (format_duration(queue_s), format_duration(run_s)), key
        assert queue_s + run_s == pytest.approx(
            _seconds(attempt["insertTs"], attempt["statusUpdateTs"])
        )
    assert rows[("flaky", "0")][2] == "FAILED_PENDING_RETRY"
    assert rows[("flaky", "0")][7] == "RuntimeError: first attempt fails"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0ms"),
        (0.0123, "12ms"),
        (1.5, "1.50s"),
        (59.25, "59.25s"),
        (125.3, "2m05.3s"),
        (3723.0, "1h02m03s"),
    ],
)
def test_durations_read_at_a_glance(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
