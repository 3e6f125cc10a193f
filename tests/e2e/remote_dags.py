"""DAGs for executors in other processes and on Dask workers (importable there by this name).

``ppacer executor tests.e2e.remote_dags ...`` loads ``dags``; Dask workers import
the task classes from here (the test puts the repository on their PYTHONPATH).
"""

from __future__ import annotations

import os
import time

import ppacer


class WhoRuns(ppacer.BaseTask):
    """Logs the process that ran it and its parent (on Dask: the worker process)."""

    def execute(self, ctx: ppacer.TaskContext) -> dict[str, int]:
        ctx.logger.info(
            "ran in pid %d under pid %d",
            os.getpid(),
            os.getppid(),
            extra={"pid": os.getpid(), "ppid": os.getppid()},
        )
        # Long enough that the attempts of a fan-out overlap and spread over workers.
        time.sleep(0.5)
        return {"ppid": os.getppid()}


class Sleepy(ppacer.BaseTask):
    """Logs, then sleeps far past its timeout (it must be killed)."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        ctx.logger.info("sleeping in pid %d", os.getpid(), extra={"pid": os.getpid()})
        time.sleep(300)


class Hello(ppacer.BaseTask):
    """Logs one line."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        ctx.logger.info("hello from %s", ctx.task_id)


class Steady(ppacer.BaseTask):
    """Runs for 3 s: longer than a short lease, so only heartbeats keep it."""

    def execute(self, ctx: ppacer.TaskContext) -> str:
        time.sleep(3)
        ctx.logger.info("steady done")
        return "steady"


def _fanout() -> ppacer.Dag:
    """Ten tasks: a root, eight in parallel, a join."""
    root = ppacer.Node(WhoRuns("root"))
    root.next_async_and_merge([WhoRuns(f"part{i}") for i in range(8)], WhoRuns("join"))
    return ppacer.Dag("fanout").add_root(root).done()


def _timeout() -> ppacer.Dag:
    node = ppacer.Node(Sleepy("sleepy"), ppacer.TaskConfig(timeout_s=2))
    return ppacer.Dag("too_slow").add_root(node).done()


def _stoppable() -> ppacer.Dag:
    node = ppacer.Node(Sleepy("sleepy"), ppacer.TaskConfig(timeout_s=120))
    return ppacer.Dag("stoppable").add_root(node).done()


dags = ppacer.Registry(
    [
        _fanout(),
        _timeout(),
        _stoppable(),
        ppacer.Dag("hello").add_root(ppacer.Node(Hello("hi"))).done(),
        ppacer.Dag("steady").add_root(ppacer.Node(Steady("steady"))).done(),
    ]
)
