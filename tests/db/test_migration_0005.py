"""Revision 0005: how attempts started moves from ``dagruntaskstarts`` into ``dagruntasks``.

A database at 0004 with attempts (started or not) upgrades with every start
kept in its attempt's row; ``dagruntaskstarts`` stays readable as a view; the
scheduler's reads see the same starts as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, inspect, text

from ppacer.db.dagruntasks import read_dag_run_tasks
from ppacer.db.engine import database_url
from ppacer.db.migrate import SCHEDULER_DB, read_state, schema_drift, upgrade

EXEC = "2024-03-11T12:00:00.000000UTC+00:00"
# (task, retry, status, start or None)
ATTEMPTS = [
    ("a", 0, "SUCCESS", ("2024-03-11T12:00:01.000000UTC+00:00", "exec-1", "v1")),
    ("b", 0, "FAILED_PENDING_RETRY", ("2024-03-11T12:00:02.000000UTC+00:00", None, None)),
    ("b", 1, "RUNNING", ("2024-03-11T12:00:03.000000UTC+00:00", "exec-2", "v2")),
    ("c", 0, "SCHEDULED", None),
]


@pytest.fixture(params=["sqlite", "postgres"])
def at_0004(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A scheduler DB at revision 0004 with attempts and their start rows."""
    if request.param == "sqlite":
        target = str(tmp_path / "scheduler.db")
    else:
        request.applymarker(pytest.mark.postgres)
        target = request.getfixturevalue("pg_url")
    engine = create_engine(database_url(target))
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(SCHEDULER_DB.directory))
        config.attributes["connection"] = conn
        command.upgrade(config, "0004_runs_by_exec")
        for task, retry, status, start in ATTEMPTS:
            key = {"d": "dag", "e": EXEC, "t": task, "r": retry}
            conn.execute(
                text(
                    'INSERT INTO dagruntasks ("DagId", "ExecTs", "TaskId", "Retry", "InsertTs", '
                    '"Status", "StatusUpdateTs", "Version") VALUES (:d, :e, :t, :r, :e, :s, :e, '
                    "'0.1.0')"
                ),
                {**key, "s": status},
            )
            if start is not None:
                conn.execute(
                    text(
                        'INSERT INTO dagruntaskstarts ("DagId", "ExecTs", "TaskId", "Retry", '
                        '"StartTs", "Executor", "CodeVersion") VALUES (:d, :e, :t, :r, :st, :ex, '
                        ":cv)"
                    ),
                    {**key, "st": start[0], "ex": start[1], "cv": start[2]},
                )
    yield engine
    engine.dispose()


def test_starts_move_into_the_attempt_rows_and_the_old_table_reads_as_before(
    at_0004: Engine,
) -> None:
    engine = at_0004
    before, after = upgrade(engine, SCHEDULER_DB)
    assert before.revision == "0004_runs_by_exec" and after.is_current
    assert "dagruntaskstarts" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                'SELECT "TaskId", "Retry", "Status", "StartTs", "Executor", "CodeVersion" '
                'FROM dagruntasks ORDER BY "TaskId", "Retry"'
            )
        ).all()
        view = conn.execute(
            text('SELECT "TaskId", "Retry", "StartTs" FROM dagruntaskstarts ORDER BY "StartTs"')
        ).all()
        read = read_dag_run_tasks(conn, "dag", EXEC)
    assert [tuple(r) for r in rows] == [
        (task, retry, status, *(start if start is not None else (None, None, None)))
        for task, retry, status, start in ATTEMPTS
    ]
    assert [tuple(r) for r in view] == [
        (task, retry, start[0]) for task, retry, _, start in ATTEMPTS if start is not None
    ]
    assert {(r.task_id, r.retry): (r.start_ts, r.executor, r.code_version) for r in read} == {
        (task, retry): start if start is not None else (None, None, None)
        for task, retry, _, start in ATTEMPTS
    }
    assert schema_drift(engine, SCHEDULER_DB) == []
    assert read_state(engine, SCHEDULER_DB).is_current
