"""``--reload`` of ``run``, ``scheduler`` and ``executor``: the flag, and what it reloads.

Each command given ``--reload`` starts a :class:`~ppacer.cli.reloader.DagReloader`
on its DAG target and hands each new registry to what it runs: the scheduler
(and, in ``ppacer run``, its executor) or the executor. A broken edit keeps
the DAGs loaded before: a scheduler shows the error in the UI and its log, an
executor logs it.
"""

from __future__ import annotations

import logging
from typing import Any

import click

from ppacer.cli.reloader import DagReloader
from ppacer.dag.dag import Registry
from ppacer.executor.executor import Executor
from ppacer.local import LocalRunner

__all__ = ["reload_option", "watch_executor", "watch_runner"]

log = logging.getLogger("ppacer.reload")


def reload_option(fn: Any) -> Any:
    """The ``--reload`` flag of ``run``, ``scheduler`` and ``executor``."""
    return click.option(
        "--reload",
        "reload",
        is_flag=True,
        default=False,
        help="Watch the DAG files and load them again when they change (no restart): "
        "runs under way keep their code, new runs take the new; a broken edit keeps "
        "the DAGs loaded before and shows the error in the UI and the log.",
    )(fn)


def watch_runner(target: str, runner: LocalRunner) -> DagReloader:
    """Reload the DAGs of a scheduler (and its executor, in ``ppacer run``) on change."""

    def use(registry: Registry) -> None:
        runner.scheduler.reload_from_thread(registry)
        if runner.executor is not None:
            runner.executor.reload(registry)

    reloader = DagReloader(target, use, runner.scheduler.reload_failed)
    reloader.start()
    return reloader


def watch_executor(target: str, executor: Executor) -> DagReloader:
    """Reload the DAGs of an executor on change (a broken edit is logged; the old code stays)."""

    def failed(error: str) -> None:
        log.error("hot reload failed, the DAGs loaded before stay in use: %s", error)

    reloader = DagReloader(target, executor.reload, failed)
    reloader.start()
    return reloader
