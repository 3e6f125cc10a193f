"""The DAGs both processes load: `hello`, greet then count, every minute and when triggered.

Your own DAG file works the same way; the scheduler and every executor need
the same code.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import ppacer


@ppacer.task
def greet(ctx: ppacer.TaskContext) -> None:
    """Log a greeting to the name in the run's parameters."""
    ctx.logger.info("hello, %s!", ctx.params.get("name", "world"))


@ppacer.task
def count(ctx: ppacer.TaskContext) -> None:
    """Log three steps."""
    for step in range(1, 4):
        ctx.logger.info("step %d of 3", step)


start = ppacer.Node(greet)
start.next(count)
every_minute = ppacer.FixedSchedule(datetime(2024, 1, 1, tzinfo=UTC), timedelta(minutes=1))
dags = ppacer.Registry([ppacer.Dag("hello", schedule=every_minute, root=start).done()])
