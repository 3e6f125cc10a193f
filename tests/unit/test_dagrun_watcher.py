"""The DAG-run watcher alone: due runs written in batches, a full queue waited for.

10,000 DAGs due at the same minute must all be created within a fraction of a
second (``benchmarks/run.py --only many_dags``): that holds only while runs
are written a batch per transaction. A queue with little room left must delay
the next batch, never shrink batches to one run a transaction.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event, func, select

import ppacer
from ppacer.db.engine import open_scheduler_db
from ppacer.db.schema import dagruns, schedules
from ppacer.scheduler.dagrun_watcher import BATCH, DagRunWatcher, NewDagRun
from ppacer.timeutils import ManualClock, format_ts

T0 = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)


class Noop(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> None:
        pass


def registry(n: int) -> ppacer.Registry:
    every_minute = ppacer.FixedSchedule(T0, 60)
    return ppacer.Registry(
        [
            ppacer.Dag(f"d{i:04d}")
            .add_schedule(every_minute)
            .add_root(ppacer.Node(Noop("t")))
            .done()
            for i in range(n)
        ]
    )


def test_runs_due_at_once_are_written_a_batch_a_transaction_through_a_small_queue(
    tmp_path: Path,
) -> None:
    n = BATCH + 44  # two batches
    engine = open_scheduler_db(str(tmp_path / "s.db"))
    commits: list[int] = []
    event.listen(engine, "commit", lambda _conn: commits.append(1))
    clock = ManualClock(T0 - timedelta(seconds=1))

    async def scenario() -> list[NewDagRun]:
        queue: asyncio.Queue[NewDagRun] = asyncio.Queue(maxsize=3)
        watcher = DagRunWatcher(engine, registry(n), clock, queue, "v", max_sleep_s=1.0)
        watcher.prepare()
        clock.advance(timedelta(seconds=1))
        commits.clear()
        creating = asyncio.create_task(watcher.create_due_runs())
        taken = []
        while len(taken) < n:  # a slow consumer: one run at a time
            taken.append(await queue.get())
            await asyncio.sleep(0)
        assert await creating == n
        return taken

    taken = asyncio.run(scenario())
    # Every DAG's run, in the order of the heap (same point: by DAG id).
    assert [r.dag_id for r in taken] == [f"d{i:04d}" for i in range(n)]
    assert len(commits) == 2
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(dagruns)).scalar() == n
        assert conn.execute(select(func.count()).select_from(schedules)).scalar() == n
        stamps = conn.execute(select(dagruns.c.ExecTs).distinct()).scalars().all()
    assert stamps == [format_ts(T0)]
    engine.dispose()
