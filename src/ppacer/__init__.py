"""ppacer: DAGs of Python tasks on a schedule, a scheduler and executors.

The public surface is re-exported here; everything else is imported by its
full path (``ppacer.scheduler.config``, ``ppacer.db.schema``, ...).

The names are loaded lazily (PEP 562): ``import ppacer`` or ``import
ppacer.dag`` loads no web server, database or validation library, so a DAG
file imported by an executor or by ``ppacer validate`` pays only for what it
uses. Type checkers see the imports below as ordinary ones.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ppacer.version import __version__

if TYPE_CHECKING:
    from ppacer.api.client import Client
    from ppacer.app import Scheduler
    from ppacer.dag.cron import CronSchedule
    from ppacer.dag.dag import Dag, Node, Registry
    from ppacer.dag.schedule import FixedSchedule, Schedule, UnionSchedule
    from ppacer.dag.status import DagRunStatus, SchedulerState, TaskStatus, TriggerRule
    from ppacer.dag.task import BaseTask, Branch, Task, TaskConfig, TaskContext, task
    from ppacer.executor.executor import Executor
    from ppacer.local import LocalRunner, default_started, run
    from ppacer.scheduler.config import DEFAULT_CONFIG, Config

# Public name -> the module that defines it.
_WHERE = {
    "Client": "ppacer.api.client",
    "Scheduler": "ppacer.app",
    "CronSchedule": "ppacer.dag.cron",
    "Dag": "ppacer.dag.dag",
    "Node": "ppacer.dag.dag",
    "Registry": "ppacer.dag.dag",
    "FixedSchedule": "ppacer.dag.schedule",
    "Schedule": "ppacer.dag.schedule",
    "UnionSchedule": "ppacer.dag.schedule",
    "DagRunStatus": "ppacer.dag.status",
    "SchedulerState": "ppacer.dag.status",
    "TaskStatus": "ppacer.dag.status",
    "TriggerRule": "ppacer.dag.status",
    "BaseTask": "ppacer.dag.task",
    "Branch": "ppacer.dag.task",
    "Task": "ppacer.dag.task",
    "TaskConfig": "ppacer.dag.task",
    "TaskContext": "ppacer.dag.task",
    "task": "ppacer.dag.task",
    "Executor": "ppacer.executor.executor",
    "LocalRunner": "ppacer.local",
    "default_started": "ppacer.local",
    "run": "ppacer.local",
    "DEFAULT_CONFIG": "ppacer.scheduler.config",
    "Config": "ppacer.scheduler.config",
}

__all__ = [
    "DEFAULT_CONFIG",
    "BaseTask",
    "Branch",
    "Client",
    "Config",
    "CronSchedule",
    "Dag",
    "DagRunStatus",
    "Executor",
    "FixedSchedule",
    "LocalRunner",
    "Node",
    "Registry",
    "Schedule",
    "Scheduler",
    "SchedulerState",
    "Task",
    "TaskConfig",
    "TaskContext",
    "TaskStatus",
    "TriggerRule",
    "UnionSchedule",
    "__version__",
    "default_started",
    "run",
    "task",
]


def __getattr__(name: str) -> Any:
    """Load a public name on first use (and keep it, so the next lookup is a plain one)."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ppacer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
