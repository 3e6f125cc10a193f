"""The DAG model: tasks, nodes, DAGs, schedules, statuses and the registry."""

from ppacer.dag.cron import CronSchedule
from ppacer.dag.dag import Dag, DagAttributes, Node, Registry, TaskInfo
from ppacer.dag.schedule import FixedSchedule, Schedule, UnionSchedule
from ppacer.dag.status import DagRunStatus, ScheduleEvent, SchedulerState, TaskStatus
from ppacer.dag.task import (
    DEFAULT_TASK_CONFIG,
    BaseTask,
    FunctionTask,
    Task,
    TaskConfig,
    TaskContext,
    task,
)

__all__ = [
    "DEFAULT_TASK_CONFIG",
    "BaseTask",
    "CronSchedule",
    "Dag",
    "DagAttributes",
    "DagRunStatus",
    "FixedSchedule",
    "FunctionTask",
    "Node",
    "Registry",
    "Schedule",
    "ScheduleEvent",
    "SchedulerState",
    "Task",
    "TaskConfig",
    "TaskContext",
    "TaskInfo",
    "TaskStatus",
    "UnionSchedule",
    "task",
]
