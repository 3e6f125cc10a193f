"""Status enums; their values are the strings stored in the database and sent on the wire."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "DagRunStatus",
    "ScheduleEvent",
    "SchedulerState",
    "TaskStatus",
    "TriggerRule",
    "check_task_transition",
]


class TaskStatus(StrEnum):
    """Status of one attempt of a task in a DAG run (a ``dagruntasks`` row)."""

    NO_STATUS = "NO_STATUS"
    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    FAILED_PENDING_RETRY = "FAILED_PENDING_RETRY"
    FAILED = "FAILED"
    SUCCESS = "SUCCESS"
    UPSTREAM_FAILED = "UPSTREAM_FAILED"
    # Not run on purpose: a branch was not followed, or its trigger rule says so.
    SKIPPED = "SKIPPED"

    @property
    def is_terminal(self) -> bool:
        """True for the statuses a task attempt never leaves by itself."""
        return self in _TERMINAL_TASK


_TERMINAL_TASK = frozenset(
    {TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.UPSTREAM_FAILED, TaskStatus.SKIPPED}
)

# The one table of legal changes of a task attempt's status. A new attempt
# (a retry, a restart, a clear) is a new row starting at SCHEDULED; a row never
# goes back, except that an attempt RUNNING when the scheduler stopped is queued
# again (RUNNING -> SCHEDULED) on recovery. Executors report the changes of
# _TRANSITIONS; the scheduler itself also makes those of _BY_SCHEDULER (a lost
# lease or a timeout fails an attempt, a run's deadline cancels a pending
# retry). Marking by hand may turn any attempt SUCCESS or FAILED (``by="hand"``).
_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.SCHEDULED: frozenset(
        {
            TaskStatus.RUNNING,
            TaskStatus.SUCCESS,
            TaskStatus.FAILED,
            TaskStatus.FAILED_PENDING_RETRY,
        }
    ),
    TaskStatus.RUNNING: frozenset(
        {TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.FAILED_PENDING_RETRY}
    ),
}
_BY_SCHEDULER: dict[TaskStatus, frozenset[TaskStatus]] = {
    **_TRANSITIONS,
    TaskStatus.RUNNING: _TRANSITIONS[TaskStatus.RUNNING] | {TaskStatus.SCHEDULED},
    TaskStatus.FAILED_PENDING_RETRY: frozenset({TaskStatus.FAILED}),
}
_BY_HAND = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED})


def check_task_transition(
    current: TaskStatus | None, new: TaskStatus, *, by: str = "executor"
) -> str | None:
    """Why a task attempt may not go from ``current`` to ``new`` (None when it may).

    ``by`` is "executor" (status reports), "scheduler" (every change the
    scheduler writes: reports it applies and its own decisions) or "hand"
    (marking through the API).
    """
    if by == "hand":
        if new in _BY_HAND:
            return None
        return f"a task can be marked SUCCESS or FAILED, not {new}"
    if current is None:
        return f"the task has no attempt, so it cannot become {new}"
    table = _BY_SCHEDULER if by == "scheduler" else _TRANSITIONS
    if new in table.get(current, frozenset()):
        return None
    return f"the attempt is {current}; it cannot become {new}"


class TriggerRule(StrEnum):
    """When a task runs, given how its parents ended (set on its :class:`~ppacer.Node`).

    ``all_success`` (default): every parent succeeded; a failed parent makes the
    task UPSTREAM_FAILED and a skipped one makes it SKIPPED.
    ``all_done``: every parent finished, however it ended.
    ``one_failed``: as soon as one parent failed (else SKIPPED) - for error handlers.
    ``one_success``: as soon as one parent succeeded (else UPSTREAM_FAILED, or
    SKIPPED when no parent failed).
    ``none_failed``: every parent succeeded or was skipped.
    """

    ALL_SUCCESS = "all_success"
    ALL_DONE = "all_done"
    ONE_FAILED = "one_failed"
    ONE_SUCCESS = "one_success"
    NONE_FAILED = "none_failed"

    def decide(self, parents: list[TaskStatus | None]) -> TaskStatus | None:
        """What happens to a task whose parents are in ``parents`` (None: not finished).

        Returns SCHEDULED (run it), SKIPPED or UPSTREAM_FAILED, or None to wait.
        """
        failed = any(p in (TaskStatus.FAILED, TaskStatus.UPSTREAM_FAILED) for p in parents)
        done = all(p is not None and p in _TERMINAL_TASK for p in parents)
        if self is TriggerRule.ALL_SUCCESS:
            if failed:
                return TaskStatus.UPSTREAM_FAILED
            if TaskStatus.SKIPPED in parents:
                return TaskStatus.SKIPPED
            return TaskStatus.SCHEDULED if done else None
        if self is TriggerRule.ALL_DONE:
            return TaskStatus.SCHEDULED if done else None
        if self is TriggerRule.ONE_FAILED:
            if failed:
                return TaskStatus.SCHEDULED
            return TaskStatus.SKIPPED if done else None
        if self is TriggerRule.ONE_SUCCESS:
            if TaskStatus.SUCCESS in parents:
                return TaskStatus.SCHEDULED
            if not done:
                return None
            return TaskStatus.UPSTREAM_FAILED if failed else TaskStatus.SKIPPED
        # NONE_FAILED
        if failed:
            return TaskStatus.UPSTREAM_FAILED
        return TaskStatus.SCHEDULED if done else None


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
    # Another scheduler of the database leads; this one waits to take over (PostgreSQL).
    STANDBY = "STANDBY"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"


class ScheduleEvent(StrEnum):
    """Why a row was written to the ``schedules`` table."""

    REGULAR = "REGULAR"
    CAUGHT_UP = "CAUGHT_UP"
    SKIPPED = "SKIPPED"
    OUT_OF_BAND = "OUT_OF_BAND"
    MANUALLY_TRIGGERED = "MANUALLY_TRIGGERED"
