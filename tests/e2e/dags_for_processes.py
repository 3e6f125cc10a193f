"""DAGs shared by a test's scheduler and the executor processes it starts.

Run as ``python -m tests.e2e.dags_for_processes URL LOGS_DB NAME`` to start an executor.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import ppacer


class Where(ppacer.BaseTask):
    """Logs which executor process ran it."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        ctx.logger.info("ran in pid %d", os.getpid(), extra={"pid": os.getpid()})


class HangFirstTime(ppacer.BaseTask):
    """Attempt 0 logs that it started and hangs (its executor gets killed); later ones pass."""

    def execute(self, ctx: ppacer.TaskContext) -> str:
        if ctx.retry == 0:
            ctx.logger.info("attempt 0 hanging in pid %d", os.getpid())
            threading.Event().wait(120)
        return f"done by pid {os.getpid()}"


def registry() -> ppacer.Registry:
    """A fan-out of 20 tasks, so several executors get work; and a task to lose."""
    root = ppacer.Node(Where("root"))
    root.next_async_and_merge([Where(f"branch{i:02d}") for i in range(20)], Where("join"))
    lost = ppacer.Node(HangFirstTime("hang"), ppacer.TaskConfig(retries=1))
    return ppacer.Registry(
        [ppacer.Dag("spread").add_root(root).done(), ppacer.Dag("lost").add_root(lost).done()]
    )


def main() -> None:
    url, logs_db, name = sys.argv[1:4]
    executor = ppacer.Executor(
        url, registry(), logs_db=logs_db, concurrency=2, name=name, poll_wait_s=1.0
    )
    serve_until_sigterm(executor, stop_timeout_s=10)


def serve_until_sigterm(executor: ppacer.Executor, stop_timeout_s: float) -> None:
    """Run ``executor``, say so on stdout, stop it (with this deadline) on SIGTERM."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    executor.start()
    print("executor started", flush=True)
    done.wait()
    executor.stop(stop_timeout_s)


if __name__ == "__main__":
    main()
