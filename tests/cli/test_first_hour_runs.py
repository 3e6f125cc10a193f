"""Runs in the first hour: who triggered, what failed, what a backfill skipped, one order.

The commands are in ``cli/runs.py``; the words they print are made by
``cli/outcome.py``, tested here on a real scheduler's answers: the actor
header the client sends, ``existingRuns`` in the backfill answer and the runs
list's order come from the scheduler.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

import ppacer
from ppacer.cli.dags import dags_show
from ppacer.cli.outcome import backfill_outcome, failed_tasks, run_outcome
from ppacer.cli.runs import runs_list
from ppacer.testing import ManualClock
from tests.conftest import wait_for

T0 = datetime(2024, 3, 11, 12, 0, tzinfo=UTC)


@ppacer.task
def fine(ctx: ppacer.TaskContext) -> None:
    ctx.logger.info("fine")


@ppacer.task
def broken(ctx: ppacer.TaskContext) -> None:
    if ctx.params.get("break"):
        raise ValueError("the input\nhas no rows")


@ppacer.task
def after(ctx: ppacer.TaskContext) -> None:
    ctx.logger.info("after")


def _registry() -> ppacer.Registry:
    root = ppacer.Node(fine)
    root.next(broken).next(after)
    every_hour = ppacer.FixedSchedule(T0, timedelta(hours=1))
    return ppacer.Registry([ppacer.Dag("etl", schedule=every_hour, root=root).done()])


@pytest.fixture
def runner(start_local):
    # A day after T0 with catch-up off: no scheduled run between the test's own.
    clock = ManualClock(T0 + timedelta(days=1, minutes=30))
    return start_local(_registry(), clock=clock)


def _finished(runner, run_id: int) -> dict:
    return wait_for(
        lambda: (
            (run := runner.client.get_dag_run(run_id).to_json())["status"] in ("SUCCESS", "FAILED")
            and run
        ),
        what=f"run {run_id} finished",
    )


def test_the_outcome_of_a_failed_run_names_its_failed_task_and_error(runner):
    run_id = runner.client.trigger_dag_run("etl", {"break": True}, T0)["runId"]
    run = _finished(runner, run_id)
    assert failed_tasks(run) == [
        {"taskId": "broken", "retry": 0, "error": "ValueError: the input\nhas no rows"}
    ]
    assert run_outcome(run) == [
        f"run {run_id} FAILED: task broken failed (retry 0): ValueError: the input has no rows",
        f"  its log: ppacer logs {run_id} broken",
    ]
    ok = _finished(
        runner, runner.client.trigger_dag_run("etl", None, T0 + timedelta(hours=1))["runId"]
    )
    assert run_outcome(ok) == [f"run {ok['runId']} SUCCESS"] and failed_tasks(ok) == []


def test_the_outcome_of_a_backfill_says_how_many_runs_existed(runner):
    final = {"backfillId": 3, "dagId": "etl", "status": "SUCCESS", "runIds": [7, 8]}
    assert backfill_outcome({}, final) == "backfill 3 of etl: SUCCESS (2 runs created)"
    assert (
        backfill_outcome({"existingRuns": 4}, final)
        == "backfill 3 of etl: SUCCESS (2 runs created, 4 already existed)"
    )
    assert "0 already existed" in backfill_outcome({"existingRuns": 0}, {**final, "runIds": [1]})


def test_trigger_wait_names_the_failed_task_and_its_error(runner, ppacer_cli):
    url = ("--url", runner.url)
    broken = ("--params", '{"break": true}', "--wait")
    result = ppacer_cli("trigger", "etl", *broken, "--at", "2024-03-11T12:00Z", *url)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[1:] == [
        "run 1 FAILED: task broken failed (retry 0): ValueError: the input has no rows",
        "  its log: ppacer logs 1 broken",
    ]
    again = ppacer_cli("trigger", "etl", *broken, "--at", "2024-03-11T13:00Z", "--json", *url)
    answer = json.loads(again.output)
    assert answer["status"] == "FAILED"
    assert answer["failedTasks"] == [
        {"taskId": "broken", "retry": 0, "error": "ValueError: the input\nhas no rows"}
    ]


def test_a_cli_trigger_and_backfill_are_recorded_as_the_clis(runner, ppacer_cli):
    url = ("--url", runner.url)
    assert ppacer_cli("trigger", "etl", *url).exit_code == 0
    history = runner.client.dag_run_history(1)
    assert [(e["action"], e["actor"]) for e in history["items"]] == [("TRIGGER", "cli")]
    backfill = ppacer_cli(
        "backfill",
        "etl",
        "--from",
        "2024-03-11T12:00Z",
        "--to",
        "2024-03-11T12:00Z",
        "--json",
        *url,
    )
    assert json.loads(backfill.output)["actor"] == "cli"


def test_a_backfill_over_existing_runs_says_how_many_existed(runner, ppacer_cli):
    url = ("--url", runner.url)
    for at in ("2024-03-11T13:00Z", "2024-03-11T15:00Z", "2024-03-11T15:30Z"):  # 15:30: no point
        assert ppacer_cli("trigger", "etl", "--at", at, *url).exit_code == 0
    result = ppacer_cli(
        "backfill", "etl", "--from", "2024-03-11T12:00Z", "--to", "2024-03-11T16:00Z", *url
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "backfill 1 of etl: SUCCESS (3 runs created, 2 already existed)"
    )
    answer = ppacer_cli(
        "backfill",
        "etl",
        "--from",
        "2024-03-11T12:00Z",
        "--to",
        "2024-03-11T16:00Z",
        "--json",
        *url,
    )
    final = json.loads(answer.output)
    assert final["runIds"] == [] and final["existingRuns"] == 5


def _order(runner, ppacer_cli) -> tuple[list[str], list[str]]:
    url = ("--url", runner.url)
    listed = json.loads(ppacer_cli("runs", "list", "--dag", "etl", "--json", *url).output)
    shown = json.loads(ppacer_cli("dags", "show", "etl", "--json", *url).output)
    return [r["execTs"] for r in listed["items"]], [r["execTs"] for r in shown["recentRuns"]]


def test_runs_list_and_dags_show_sort_runs_the_same_way(runner, ppacer_cli):
    url = ("--url", runner.url)
    # Created in another order than their logical times.
    for at in ("2024-03-11T15:00Z", "2024-03-11T13:00Z", "2024-03-11T14:00Z"):
        assert ppacer_cli("trigger", "etl", "--at", at, *url).exit_code == 0
    listed, shown = _order(runner, ppacer_cli)
    assert listed == shown == sorted(listed, reverse=True)
    assert [ts[11:16] for ts in listed] == ["15:00", "14:00", "13:00"]
    assert "newest logical time" in " ".join((runs_list.help or "").split())
    assert "newest logical time" in " ".join((dags_show.help or "").split())
