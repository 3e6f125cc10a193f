"""Runs written in batches (the DAG-run watcher's path): each gets its own RunId back."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ppacer.dag.status import ScheduleEvent
from ppacer.db import dagruns as runs_db
from ppacer.db.engine import open_scheduler_db
from ppacer.db.schema import dagruns, schedules

T1 = "2026-12-04T18:00:00.000000UTC+00:00"
T2 = "2026-12-04T18:01:00.000000UTC+00:00"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_batch_of_runs_returns_each_runs_id_in_order(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    target = str(tmp_path / "s.db") if backend == "sqlite" else request.getfixturevalue("pg_url")
    engine = open_scheduler_db(target)
    try:
        with engine.begin() as conn:  # runs there before: ids to skip over
            runs_db.insert_dag_run(conn, "b", T1, T1, "v")
            runs_db.insert_dag_run(conn, "z", T2, T1, "v")
        batch = [("c", T2), ("a", T1), ("b", T2), ("a", T2), ("z", T1)]
        with engine.begin() as conn:
            ids = runs_db.insert_dag_runs(conn, batch, T2, "v")
            runs_db.insert_schedules(
                conn, [(d, ScheduleEvent.REGULAR, ts, None) for d, ts in batch], T2
            )
        with engine.connect() as conn:
            stored = {
                run_id: (dag_id, exec_ts)
                for run_id, dag_id, exec_ts in conn.execute(
                    select(dagruns.c.RunId, dagruns.c.DagId, dagruns.c.ExecTs)
                )
            }
            decisions = conn.execute(select(schedules.c.DagId, schedules.c.ScheduleTs)).all()
        assert len(set(ids)) == len(batch)
        assert [stored[i] for i in ids] == batch
        assert sorted(decisions) == sorted(batch)
        # One run that exists already: the whole batch is refused, nothing written.
        with pytest.raises(IntegrityError), engine.begin() as conn:
            runs_db.insert_dag_runs(conn, [("new", T1), ("b", T1)], T2, "v")
        with engine.connect() as conn:
            assert len(conn.execute(select(dagruns.c.RunId)).all()) == len(batch) + 2
    finally:
        engine.dispose()
