"""The UI's database reads against a real SQLite file."""

from __future__ import annotations

from ppacer.dag.status import DagRunStatus, TaskStatus
from ppacer.db import dagruns as runs_db
from ppacer.db import dagruntasks as tasks_db
from ppacer.db.engine import open_scheduler_db

TS = "2024-03-11T00:0{}:00.000000UTC+00:00"


def test_task_counts_by_run_count_only_the_latest_attempt_of_each_task(tmp_path):
    engine = open_scheduler_db(str(tmp_path / "scheduler.db"))
    try:
        with engine.begin() as conn:
            ids = []
            for i, attempts in enumerate(
                [
                    # a retried task counts once, in the status of its last attempt
                    [
                        ("a", 0, TaskStatus.SUCCESS),
                        ("b", 0, TaskStatus.FAILED),
                        ("b", 1, TaskStatus.FAILED),
                        ("b", 2, TaskStatus.RUNNING),
                    ],
                    [("a", 0, TaskStatus.FAILED), ("b", 0, TaskStatus.UPSTREAM_FAILED)],
                    [],  # a run whose tasks were not scheduled yet
                ]
            ):
                exec_ts = TS.format(i)
                ids.append(
                    runs_db.insert_dag_run(
                        conn, "d", exec_ts, exec_ts, "test", DagRunStatus.RUNNING
                    )
                )
                if attempts:
                    tasks_db.insert_dag_run_tasks(conn, "d", exec_ts, attempts, exec_ts, "test")
            # Another DAG's run at the same time is not counted with them.
            runs_db.insert_dag_run(conn, "e", TS.format(0), TS.format(0), "test")
            tasks_db.insert_dag_run_tasks(
                conn, "e", TS.format(0), [("a", 0, TaskStatus.SUCCESS)], TS.format(0), "test"
            )
        with engine.connect() as conn:
            counts = tasks_db.count_tasks_by_run(conn, ids)
            assert tasks_db.count_tasks_by_run(conn, []) == {}
        assert counts == {
            ids[0]: {"SUCCESS": 1, "RUNNING": 1},
            ids[1]: {"FAILED": 1, "UPSTREAM_FAILED": 1},
        }
    finally:
        engine.dispose()
