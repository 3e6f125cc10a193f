"""A first DAG for the command line: ``ppacer run ppacer.examples.hello``.

``hello`` greets whoever the run's parameters name, then counts to three;
it runs every minute and whenever triggered
(``ppacer trigger hello --params '{"name": "you"}'``). To see a failure and
a restart, ``--params '{"fail": true}'`` makes the first attempt of ``count``
fail; ``ppacer restart RUN`` then runs it again, and it succeeds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ppacer.dag.dag import Dag, Node, Registry
from ppacer.dag.schedule import FixedSchedule
from ppacer.dag.task import TaskContext, task

__all__ = ["dags"]


@task
def greet(ctx: TaskContext) -> str:
    """Log a greeting to the name in the run's parameters."""
    name = str(ctx.params.get("name", "world"))
    ctx.logger.info("hello, %s!", name)
    return name


@task
def count(ctx: TaskContext) -> None:
    """Log three steps; fail the first attempt if the run's parameters say ``fail``."""
    for step in range(1, 4):
        ctx.logger.info("step %d of 3", step)
    if ctx.params.get("fail") and ctx.retry == 0:
        raise RuntimeError("asked to fail (parameter 'fail'); a restart succeeds")


_start = Node(greet)
_start.next(Node(count))

#: The registry ``ppacer run`` finds.
dags = Registry(
    [
        Dag(
            "hello",
            schedule=FixedSchedule(datetime(2024, 1, 1, tzinfo=UTC), timedelta(minutes=1)),
            root=_start,
            tags=["example"],
            description="greets the name in its parameters, then counts to three",
        ).done()
    ]
)
