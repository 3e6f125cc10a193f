"""The DAG of the code-identity test: copied into each executor's directory, one copy changed.

``identity``: ``prepare`` -> ``compute`` -> ``finish``. Each task logs which
body ran and leaves a file named after it in its executor's working
directory. The test changes ``compute``'s body in one copy by replacing
``BODY`` ("original body") in this file's text: that changes the task's code
version, which the scheduler compares with the one it has.
"""

from __future__ import annotations

from pathlib import Path

import ppacer

BODY = "original body"


class Step(ppacer.BaseTask):
    """Logs that it ran and leaves ``ran-<task>`` in the working directory."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        ctx.logger.info("%s ran", ctx.task_id)
        Path(f"ran-{ctx.task_id}").touch()


class Compute(ppacer.BaseTask):
    """The task whose body differs between the copies."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        ctx.logger.info("compute: original body")
        Path("ran-compute-original body").touch()


def _identity() -> ppacer.Dag:
    root = ppacer.Node(Step("prepare"))
    root.next(Compute("compute")).next(Step("finish"))
    return ppacer.Dag("identity").add_root(root).done()


dags = ppacer.Registry([_identity()])
