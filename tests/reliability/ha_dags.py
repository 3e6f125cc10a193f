"""DAGs for the failover tests: run by scheduler and executor processes.

Each task appends one line to the file named by ``PPACER_TEST_RAN`` when it
runs (``O_APPEND``: whole lines from any process), so a test counts how many
times each task really ran, across executors and takeovers.
"""

from __future__ import annotations

import os
import time

import ppacer

#: Tasks of the ``wide`` DAG: a root, 198 in parallel, a join.
WIDE_TASKS = 200


class Mark(ppacer.BaseTask):
    """Records that it ran, then takes a little while."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        path = os.environ.get("PPACER_TEST_RAN")
        if path:
            line = f"{ctx.exec_ts.isoformat()} {self.task_id} {ctx.retry} {os.getpid()}\n"
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        time.sleep(float(os.environ.get("PPACER_TEST_TASK_S", "0.1")))


def _wide() -> ppacer.Dag:
    root = ppacer.Node(Mark("root"))
    root.next_async_and_merge([Mark(f"t{i:03d}") for i in range(WIDE_TASKS - 2)], Mark("join"))
    return ppacer.Dag("wide").add_root(root).done()


registry = ppacer.Registry([_wide()])

if os.environ.get("PPACER_TEST_VARIANT"):
    # Other DAG code: a scheduler started with it has another registry fingerprint.
    registry.add(ppacer.Dag("extra").add_root(ppacer.Node(Mark("only"))).done())
