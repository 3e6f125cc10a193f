"""The same scheduler on PostgreSQL (the server on 127.0.0.1:5432), through the same code."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, text

import ppacer
from ppacer.db.engine import database_url
from tests.conftest import Recorder, wait_for
from tests.e2e.test_runs import Note, manual_dag

pytestmark = pytest.mark.postgres


def pg_query(url: str, sql: str) -> list[Any]:
    engine = create_engine(database_url(url))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)).mappings())
    finally:
        engine.dispose()


def test_runs_failures_retries_and_restart_on_postgres(pg_url, recorder: Recorder):
    from ppacer.local import LocalRunner

    root = ppacer.Node(Note("1", recorder))
    merge = root.next_async_and_merge(
        [Note("21", recorder), Note("22", recorder, fail_times=1)], Note("3", recorder)
    )
    merge.next(Note("4", recorder))
    flaky = ppacer.Node(Note("flaky", recorder, fail_times=1), ppacer.TaskConfig(retries=1))
    dags = ppacer.Registry([manual_dag("pg_diamond", root), manual_dag("pg_retry", flaky)])
    runner = LocalRunner(dags, pg_url, pg_url, port=0, stop_timeout_s=5).start()
    try:
        runner.client.trigger_dag_run("pg_diamond")
        runner.client.trigger_dag_run("pg_retry", {"k": "v"})

        def finished() -> list[Any]:
            rows = pg_query(pg_url, 'SELECT * FROM dagruns ORDER BY "RunId"')
            return rows if all(r["Status"] in ("SUCCESS", "FAILED") for r in rows) else []

        runs = {r["DagId"]: r for r in wait_for(finished, 30, "runs finished on PostgreSQL")}
        assert runs["pg_diamond"]["Status"] == "FAILED"
        assert runs["pg_retry"]["Status"] == "SUCCESS"
        status = {
            (r["TaskId"], r["Retry"]): r["Status"]
            for r in pg_query(pg_url, "SELECT * FROM dagruntasks WHERE \"DagId\"='pg_diamond'")
        }
        assert status == {
            ("1", 0): "SUCCESS",
            ("21", 0): "SUCCESS",
            ("22", 0): "FAILED",
            ("3", 0): "UPSTREAM_FAILED",
            ("4", 0): "UPSTREAM_FAILED",
        }
        runner.client.restart_dag_run("pg_diamond", runs["pg_diamond"]["ExecTs"])
        wait_for(
            lambda: (
                pg_query(pg_url, 'SELECT "Status" FROM dagruns WHERE "DagId"=\'pg_diamond\'')[0][
                    "Status"
                ]
                == "SUCCESS"
            ),
            30,
            "restarted run SUCCESS",
        )
        restarts = pg_query(pg_url, "SELECT * FROM dagrunrestarts")
        assert [(r["DagId"], r["Restart"]) for r in restarts] == [("pg_diamond", 1)]
        logs = pg_query(pg_url, "SELECT * FROM tasklogs WHERE \"TaskId\"='flaky'")
        assert {r["Retry"] for r in logs} == {0, 1}
        details = runner.client.ui_dagrun_details(runs["pg_diamond"]["RunId"])
        assert {t["taskId"] for t in details["tasks"]} == {"1", "21", "22", "3", "4"}
    finally:
        runner.stop()
