"""The DAG of the scheduler-outage test, run by ``ppacer scheduler`` and ``ppacer executor``.

``outage``: one task, ``talk``, which logs ``BEFORE`` lines, waits for the file
``$OUTAGE_DIR/gate``, logs ``AFTER`` lines and then creates
``$OUTAGE_DIR/logged`` (the test stops the scheduler before opening the gate,
so the ``AFTER`` lines are all logged while it is away). A later attempt logs
nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import ppacer

BEFORE = 100
AFTER = 10_000


def expected_lines() -> list[str]:
    """Every line the first attempt logs, in order."""
    return [f"before {n}" for n in range(BEFORE)] + [f"after {n}" for n in range(AFTER)]


class Talk(ppacer.BaseTask):
    """Logs before the gate opens and, many more lines, after."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        if ctx.retry > 0:
            return
        where = Path(os.environ["OUTAGE_DIR"])
        for n in range(BEFORE):
            ctx.logger.info("before %d", n)
        deadline = time.monotonic() + 110
        while not (where / "gate").exists():  # another process opens it: a file, polled
            if time.monotonic() > deadline:
                raise TimeoutError("the gate was never opened")
            time.sleep(0.01)
        for n in range(AFTER):
            ctx.logger.info("after %d", n)
        (where / "logged").touch()


dags = ppacer.Registry([ppacer.Dag("outage").add_root(ppacer.Node(Talk("talk"))).done()])
