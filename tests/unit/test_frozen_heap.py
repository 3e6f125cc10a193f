"""A scheduler's process keeps its long-lived objects out of the collector's full passes,
and gives them back when it stops or reloads its DAGs."""

from __future__ import annotations

import asyncio
import gc
import weakref
from datetime import UTC, datetime
from pathlib import Path

import ppacer
from ppacer.scheduler.frozen_heap import frozen_heap


class Noop(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> None:
        pass


def _registry(dag_id: str) -> ppacer.Registry:
    schedule = ppacer.FixedSchedule(datetime(2030, 1, 1, tzinfo=UTC), 60)
    dag = ppacer.Dag(dag_id).add_schedule(schedule).add_root(ppacer.Node(Noop("t"))).done()
    return ppacer.Registry([dag])


def test_the_heap_is_frozen_while_the_scheduler_runs_and_a_reload_frees_old_dags(
    tmp_path: Path,
) -> None:
    scheduler = ppacer.Scheduler(str(tmp_path / "s.db"), logs_db=str(tmp_path / "l.db"))
    first = _registry("old")
    old_dag = weakref.ref(first["old"])
    # A cycle, as nodes and DAGs make: only the cyclic collector can free it.
    first["old"].cycle = first["old"]  # type: ignore[attr-defined]
    scheduler.start(first)
    del first
    counts: dict[str, int] = {}

    async def main() -> None:
        async with scheduler.running():
            counts["running"] = gc.get_freeze_count()
            scheduler.reload(_registry("new"))
            counts["reloaded"] = gc.get_freeze_count()

    counts["before"] = gc.get_freeze_count()
    try:
        with frozen_heap():  # as LocalRunner.serve_forever does
            asyncio.run(main())
    finally:
        scheduler.close()
    counts["stopped"] = gc.get_freeze_count()
    assert counts["before"] == 0 and counts["running"] > 0 and counts["reloaded"] > 0
    assert old_dag() is None  # collected at the reload, though frozen before it
    assert counts["stopped"] == 0
