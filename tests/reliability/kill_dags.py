"""The DAG of the kill-point tests, run by ``ppacer scheduler`` and ``ppacer executor`` processes.

``layers``: 500 quick tasks, a root and four fan-out/fan-in layers (123-124
tasks in parallel, then a join). Every task appends one line to the file named by
``PPACER_TEST_RAN`` before it does anything else (``O_APPEND``: whole lines from
any process): ``exec_ts task_id retry pid wall_time``, the oracle of what really
ran, whatever the databases say. Then it takes ``PPACER_TEST_TASK_S`` seconds.

``hold``: one task that runs for ``PPACER_TEST_HOLD_S`` seconds (and records
that it ran, as above): an attempt in flight while its scheduler is frozen.
"""

from __future__ import annotations

import os
import time

import ppacer

#: Tasks of the ``layers`` DAG.
TASKS = 500
#: Fan-out/fan-in layers after the root.
LAYERS = 4


class Mark(ppacer.BaseTask):
    """Records that it ran (one line in ``PPACER_TEST_RAN``), then takes a little while."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        path = os.environ.get("PPACER_TEST_RAN")
        if path:
            line = (
                f"{ctx.exec_ts.isoformat()} {self.task_id} {ctx.retry} {os.getpid()} "
                f"{time.time():.6f}\n"
            )
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        time.sleep(float(os.environ.get("PPACER_TEST_TASK_S", "0.01")))


class Hold(Mark):
    """Records that it ran, then runs for ``PPACER_TEST_HOLD_S`` seconds."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        super().execute(ctx)
        time.sleep(float(os.environ.get("PPACER_TEST_HOLD_S", "1")))


def layer_widths() -> list[int]:
    """How many tasks run in parallel in each layer (the root and the joins aside)."""
    fanned = TASKS - 1 - LAYERS
    return [fanned // LAYERS + (1 if i < fanned % LAYERS else 0) for i in range(LAYERS)]


def task_ids() -> list[str]:
    """Every task id of ``layers``."""
    ids = ["root"]
    for layer, width in enumerate(layer_widths()):
        ids += [f"l{layer}t{i:03d}" for i in range(width)] + [f"join{layer}"]
    return ids


def _layers() -> ppacer.Dag:
    root = node = ppacer.Node(Mark("root"))
    for layer, width in enumerate(layer_widths()):
        branches = [Mark(f"l{layer}t{i:03d}") for i in range(width)]
        node = node.next_async_and_merge(branches, Mark(f"join{layer}"))
    return ppacer.Dag("layers").add_root(root).done()


registry = ppacer.Registry(
    [_layers(), ppacer.Dag("hold").add_root(ppacer.Node(Hold("held"))).done()]
)


def _serve_starts() -> None:
    """Start ``ppacer`` commands in processes forked from this one, which imported ppacer once.

    Lines on stdin, JSON: ``["start", LOG_FILE, ARG...]`` forks a child that runs
    the CLI's own entry point with those arguments (its stdout and stderr to
    LOG_FILE) and answers its pid; ``["wait", PID]`` reaps that child and answers
    its exit code (negative: the signal that ended it). A restart then costs what a
    scheduler's start costs, not the interpreter's and the imports' (about 1.7 s
    here): a test can kill and restart a scheduler dozens of times in seconds. The
    children are ordinary processes: a SIGKILL ends one as it ends any scheduler.
    """
    import json
    import sys
    import threading
    import traceback

    # Everything `ppacer scheduler` imports as it starts, imported before any fork.
    import ppacer.app
    import ppacer.local  # noqa: F401
    from ppacer.cli import main

    # A fork copies only the thread that forks: no other may exist yet.
    assert threading.active_count() == 1, threading.enumerate()
    for line in sys.stdin:
        command, *rest = json.loads(line)
        if command == "start":
            log_file, *args = rest
            pid = os.fork()
            if pid == 0:  # the child: the CLI, as `ppacer ARG...` would run it
                code = 1
                try:
                    out = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                    os.dup2(out, 1)
                    os.dup2(out, 2)
                    nothing = os.open(os.devnull, os.O_RDONLY)
                    os.dup2(nothing, 0)
                    main(args=args, prog_name="ppacer")
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 1
                except BaseException:
                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            print(pid, flush=True)
        elif command == "wait":
            _, status = os.waitpid(int(rest[0]), 0)
            print(os.waitstatus_to_exitcode(status), flush=True)


if __name__ == "__main__":
    _serve_starts()
