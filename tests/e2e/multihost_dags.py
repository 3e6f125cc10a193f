"""The DAG of the multi-host test: copied as a file into each host's own directory.

Self-contained (it imports only ppacer and the standard library), so a copy
runs wherever ppacer is installed. ``spread``: a root, 98 tasks in parallel and
a join, 100 tasks. Each task logs ``LINES`` lines naming the host it ran on
(``MULTIHOST_NAME`` in its executor's environment) and appends the same lines
to ``written.log`` in its executor's working directory: what was written,
host by host, to compare with what the scheduler stored.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import ppacer

#: Lines each task logs.
LINES = 5
#: Tasks between the root and the join.
WIDTH = 98


def line(task_id: str, n: int, host: str) -> str:
    """The ``n``-th line task ``task_id`` logs on ``host``."""
    return f"task {task_id} line {n} of {LINES} on {host}"


class Spoken(ppacer.BaseTask):
    """Logs ``LINES`` lines (and writes them to ``written.log``), taking a moment."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        host = os.environ.get("MULTIHOST_NAME", "unknown")
        lines = [line(ctx.task_id, n, host) for n in range(LINES)]
        for text in lines:
            ctx.logger.info(text)
        # One append per task: O_APPEND writes of a few hundred bytes do not interleave.
        with Path("written.log").open("a", encoding="utf-8") as out:
            out.write("".join(f"{text}\n" for text in lines))
        # Long enough that the fan-out's attempts overlap and spread over the hosts.
        time.sleep(0.1)


def _spread() -> ppacer.Dag:
    root = ppacer.Node(Spoken("root"))
    root.next_async_and_merge([Spoken(f"t{i:02d}") for i in range(WIDTH)], Spoken("join"))
    return ppacer.Dag("spread").add_root(root).done()


dags = ppacer.Registry([_spread()])
