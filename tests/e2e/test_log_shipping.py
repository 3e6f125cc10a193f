"""Task logs shipped over the API: stored once (by attempt and seq), in order, for any reader."""

from __future__ import annotations

import pytest

import ppacer
from ppacer.api.models import LogRecord
from ppacer.errors import InvalidInputError
from tests.conftest import query, wait_for


@ppacer.task
def quiet(ctx: ppacer.TaskContext) -> None:
    """Logs nothing itself: the test ships its records."""


def test_shipped_records_are_stored_once_and_read_in_order(start_local, db_paths) -> None:
    runner = start_local(ppacer.Registry([ppacer.Dag("shipped", root=ppacer.Node(quiet)).done()]))
    run = runner.client.trigger_dag_run("shipped", exec_ts="2024-03-11T12:00:00.120000Z")
    wait_for(lambda: runner.client.get_dag_run(run["runId"])["status"] == "SUCCESS", 30, "run")
    exec_ts = run["execTs"]
    records = [
        LogRecord("shipped", exec_ts, "quiet", 0, seq, exec_ts, "INFO", f"line {seq}", {"n": seq})
        for seq in range(5)
    ]
    first = runner.client.ship_logs("remote-1", records[:3])
    assert (first.stored, first.duplicates, first.rejected) == (3, 0, [])
    # The answer was lost: the executor sends the batch again, with what came next.
    again = runner.client.ship_logs("remote-1", records)
    assert (again.stored, again.duplicates) == (2, 3)
    logs = runner.client.get_task_logs(run["runId"], "quiet")
    assert [r["message"] for r in logs["records"]] == [f"line {n}" for n in range(5)]
    assert logs["records"][4]["attributes"] == {"n": 4}
    rows = query(db_paths[1], "SELECT Seq FROM tasklogs ORDER BY Seq")
    assert [r["Seq"] for r in rows] == [0, 1, 2, 3, 4]


def test_records_of_unknown_runs_are_refused_by_index(start_local) -> None:
    runner = start_local(ppacer.Registry([ppacer.Dag("shipped", root=ppacer.Node(quiet)).done()]))
    ts = "2024-03-11T12:00:00.000000UTC+00:00"
    records = [
        LogRecord("nope", ts, "quiet", 0, 0, ts, "INFO", "unknown DAG"),
        LogRecord("shipped", ts, "quiet", 0, 0, ts, "INFO", "no such run"),
    ]
    answer = runner.client.ship_logs("remote-1", records)
    assert answer.stored == 0
    assert [(r.index, r.error.split(":")[0]) for r in answer.rejected] == [
        (0, "dagId"),
        (1, "execTs"),
    ]
    bad = LogRecord("shipped", "yesterday", "quiet", 0, 0, ts, "INFO", "bad timestamp")
    refused = runner.client.ship_logs("remote-1", [bad])
    assert refused.rejected[0].error.startswith("records.0.execTs:")
    with pytest.raises(InvalidInputError, match="seq"):
        runner.client.ship_logs("remote-1", [LogRecord("shipped", ts, "quiet", 0, -1, ts, "I", "")])
