"""ppacer: DAGs of Python tasks on a schedule, a scheduler and executors.

The public surface is re-exported here; everything else is imported by its
full path (``ppacer.scheduler.config``, ``ppacer.db.schema``, ...).
"""

__version__ = "0.1.0"

from ppacer.dag.cron import CronSchedule
from ppacer.dag.dag import Dag, Node, Registry
from ppacer.dag.schedule import FixedSchedule, Schedule, UnionSchedule
from ppacer.dag.status import DagRunStatus, SchedulerState, TaskStatus, TriggerRule
from ppacer.dag.task import BaseTask, Branch, Task, TaskConfig, TaskContext, task
from ppacer.executor.client import Client
from ppacer.executor.executor import Executor
from ppacer.local import LocalRunner, default_started, run
from ppacer.scheduler.config import DEFAULT_CONFIG, Config
from ppacer.scheduler.server import Scheduler

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
