"""The ``ppacer`` command line against a real scheduler."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

import ppacer
from ppacer.cli import main
from ppacer.testing import ManualClock
from tests.conftest import query, wait_for, wait_run_finished
from tests.e2e.test_runs import Note

T0 = datetime(2024, 3, 11, 12, 0, tzinfo=UTC)


def test_cli_preview_trigger_backfill_pause(start_local, db_paths, recorder):
    dag = ppacer.Dag(
        "cli",
        schedule=ppacer.FixedSchedule(T0, timedelta(hours=6)),
        root=ppacer.Node(Note("a", recorder)),
    ).done()
    clock = ManualClock(T0 + timedelta(days=10, minutes=1))
    runner = start_local(ppacer.Registry([dag]), clock=clock)
    cli = CliRunner()
    url = ["--url", runner.url]

    result = cli.invoke(main, ["schedule", "cli", "-n", "2", "--json", *url])
    assert result.exit_code == 0, result.output
    points = json.loads(result.output)
    assert [p["utc"][:19] for p in points] == ["2024-03-21T18:00:00", "2024-03-22T00:00:00"]

    result = cli.invoke(main, ["trigger", "cli", "--params", '{"k": 1}', *url])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("run 1 of cli at ")
    wait_run_finished(db_paths[0], "cli", 1)

    result = cli.invoke(
        main,
        ["backfill", "cli", "--from", "2024-03-12T00:00:00Z", "--to", "2024-03-12T18:00:00Z", *url],
    )
    assert result.exit_code == 0, result.output
    wait_run_finished(db_paths[0], "cli", 5)
    backfilled = query(db_paths[0], "SELECT ExecTs FROM dagruns WHERE RunId > 1 ORDER BY RunId")
    assert [r["ExecTs"][:19] for r in backfilled] == [
        "2024-03-12T00:00:00", "2024-03-12T06:00:00", "2024-03-12T12:00:00", "2024-03-12T18:00:00"
    ]  # fmt: skip

    assert cli.invoke(main, ["dags", "pause", "cli", *url]).exit_code == 0
    wait_for(lambda: query(db_paths[0], "SELECT IsPaused FROM dagpauses")[0]["IsPaused"] == 1)
    assert cli.invoke(main, ["dags", "unpause", "cli", *url]).exit_code == 0


def test_cli_exit_codes(start_local, recorder):
    runner = start_local(ppacer.Registry([ppacer.Dag("x", root=Note("a", recorder)).done()]))
    cli = CliRunner()
    result = cli.invoke(main, ["trigger", "nope", "--url", runner.url])
    assert result.exit_code == 1
    assert "unknown DAG 'nope'" in result.output
    result = cli.invoke(main, ["trigger", "x", "--params", "[1]", "--url", runner.url])
    assert result.exit_code == 2
    assert "JSON object" in result.output
    result = cli.invoke(main, ["trigger", "x", "--at", "yesterday", "--url", runner.url])
    assert result.exit_code == 2
