"""Status enums; their values are the strings stored in the database and sent on the wire."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DagRunStatus", "ScheduleEvent", "SchedulerState", "TaskStatus"]


class TaskStatus(StrEnum):
    """Status of one attempt of a task in a DAG run (a ``dagruntasks`` row)."""

    NO_STATUS = "NO_STATUS"
    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    FAILED_PENDING_RETRY = "FAILED_PENDING_RETRY"
    FAILED = "FAILED"
    SUCCESS = "SUCCESS"
    UPSTREAM_FAILED = "UPSTREAM_FAILED"

    @property
    def is_terminal(self) -> bool:
        """True for the statuses a task attempt never leaves by itself."""
        return self in _TERMINAL_TASK


_TERMINAL_TASK = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.UPSTREAM_FAILED})


class DagRunStatus(StrEnum):
    """Status of a DAG run (a ``dagruns`` row)."""

    READY_TO_SCHEDULE = "READY_TO_SCHEDULE"
    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"

    @property
    def is_finished(self) -> bool:
        """True for SUCCESS and FAILED."""
        return self in (DagRunStatus.SUCCESS, DagRunStatus.FAILED)


class SchedulerState(StrEnum):
    """Life cycle of a scheduler, as reported by ``GET /state``."""

    STARTED = "STARTED"
    SYNCHRONIZING = "SYNCHRONIZING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"


class ScheduleEvent(StrEnum):
    """Why a row was written to the ``schedules`` table."""

    REGULAR = "REGULAR"
    CAUGHT_UP = "CAUGHT_UP"
    SKIPPED = "SKIPPED"
    OUT_OF_BAND = "OUT_OF_BAND"
    MANUALLY_TRIGGERED = "MANUALLY_TRIGGERED"
