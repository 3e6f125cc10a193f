"""One active DAG run in memory, and the pure rules that move it on.

Nothing here touches the database, the event loop or the clock: the task
scheduler (:mod:`ppacer.scheduler.task_scheduler`) asks these rules what
happens, then writes it. That keeps the rules testable with a DAG and a few
statuses, and keeps readiness event-driven: when a task finishes only its
children are looked at (a counter of parents still to finish per task, and the
child's trigger rule); nothing scans the run.

A run ends FAILED when a task failed for good (unless a ``one_failed`` child of
it - an error handler - succeeded) or a task could not run because of an
upstream failure; SKIPPED tasks (branches not followed) do not fail a run.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from ppacer.dag.dag import Dag
from ppacer.dag.status import DagRunStatus, TaskStatus, TriggerRule

__all__ = ["RunState", "Settlement"]

# Tuples, not sets: membership by identity is the cheapest test on the hot path.
# Statuses with which a task counts as finished for its children's trigger rules.
_SETTLED = (TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.UPSTREAM_FAILED, TaskStatus.SKIPPED)
# Rules that cannot fire while a parent is unfinished, whatever a successful parent says.
_WAIT_ON_SUCCESS = (
    TriggerRule.ALL_SUCCESS,
    TriggerRule.ALL_DONE,
    TriggerRule.NONE_FAILED,
    TriggerRule.ONE_FAILED,
)
# Latest attempts that are not over yet: recovery queues or resumes them.
_OPEN = (TaskStatus.SCHEDULED, TaskStatus.RUNNING, TaskStatus.FAILED_PENDING_RETRY)


@dataclass(frozen=True, slots=True)
class Settlement:
    """What a finished task (or a freshly loaded run) decided for the tasks it gates."""

    # Tasks to run now, in order; their attempts are made by :meth:`RunState.start`.
    ready: list[str]
    # Tasks that will not run: (task_id, retry, SKIPPED or UPSTREAM_FAILED), in order.
    # They are already recorded in the state; only their rows are left to write.
    settled: list[tuple[str, int, TaskStatus]]


@dataclass(slots=True)
class RunState:
    """In-memory state of one active DAG run (rebuilt from the database on every load)."""

    run_id: int
    dag: Dag
    exec_ts: str
    status: DagRunStatus
    params: dict[str, Any]
    restarts: int = 0
    # Latest attempt of each task that has one in the current epoch: (retry, status).
    latest: dict[str, tuple[int, TaskStatus]] = field(default_factory=dict)
    # Retry number the next attempt of a task without a current attempt gets.
    next_retry: dict[str, int] = field(default_factory=dict)
    # For tasks not yet scheduled or settled: how many parents have not finished yet.
    waiting: dict[str, int] = field(default_factory=dict)
    # Tasks whose latest attempt is not terminal (or that have none yet).
    unfinished: int = 0
    # Values returned by succeeded tasks (JSON-decoded), by task id.
    outputs: dict[str, Any] = field(default_factory=dict)
    # When the run was created (stored form), for the DAG's run timeout.
    insert_ts: str = ""
    # Lease tokens of attempts already reported final, so a repeated report is a no-op.
    closed_leases: dict[tuple[str, int], str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        """The run's key in :attr:`TaskScheduler.active`: ``(dag_id, exec_ts)``."""
        return (self.dag.id, self.exec_ts)

    # ------------------------------------------------------------------ readiness

    def settled_status(self, task_id: str) -> TaskStatus | None:
        """The task's status if it has finished for its children's sake, else None."""
        current = self.latest.get(task_id)
        return current[1] if current is not None and current[1] in _SETTLED else None

    def decide(self, task_id: str) -> TaskStatus | None:
        """What the task's trigger rule says now: SCHEDULED, SKIPPED, UPSTREAM_FAILED or wait."""
        info = self.dag.tasks[task_id]
        if not info.parents:
            return TaskStatus.SCHEDULED
        return info.trigger_rule.decide([self.settled_status(p) for p in info.parents])

    def retry_allowed(self, task_id: str, retry: int) -> bool:
        """Whether a failed attempt ``retry`` may be tried again.

        Each restart of the run grants the task its full retry budget again.
        """
        retries = self.dag.tasks[task_id].config.retries
        return retry < (retries + 1) * (self.restarts + 1) - 1

    def upstream_outputs(self, task_id: str) -> dict[str, Any]:
        """What the task's succeeded parents returned, by parent id (None: nothing)."""
        return {
            p: self.outputs.get(p)
            for p in self.dag.tasks[task_id].parents
            if self.latest.get(p, (0, None))[1] is TaskStatus.SUCCESS
        }

    # ------------------------------------------------------------------ loading

    def restore(
        self, attempts: Iterable[tuple[str, int, TaskStatus]], reset: Collection[str] = ()
    ) -> list[tuple[str, int, TaskStatus]]:
        """Take each task's latest attempt from ``attempts`` (task_id, retry, status).

        Tasks in ``reset`` (restarted or cleared) drop theirs: their next
        attempt gets the next retry number. Returns the latest attempts that
        are not over (SCHEDULED, RUNNING, FAILED_PENDING_RETRY), for the
        scheduler to queue or resume.
        """
        for task_id, retry, status in attempts:
            if task_id in self.dag.tasks:
                prev = self.latest.get(task_id)
                if prev is None or retry >= prev[0]:
                    self.latest[task_id] = (retry, status)
        open_attempts = []
        for task_id, (retry, status) in list(self.latest.items()):
            if task_id in reset:
                del self.latest[task_id]
                self.next_retry[task_id] = retry + 1
            elif status in _OPEN:
                open_attempts.append((task_id, retry, status))
        return open_attempts

    def settle_unstarted(self) -> Settlement:
        """Decide every task without an attempt, in graph order, and count what is unfinished.

        Each runs now, is settled (skipped, or upstream-failed: e.g. downstream
        of a failure that never got its row) or waits for its parents.
        """
        ready: list[str] = []
        settled: list[tuple[str, int, TaskStatus]] = []
        for task_id, info in self.dag.tasks.items():
            if task_id in self.latest:
                continue
            decision = self.decide(task_id)
            if decision is None:
                self.waiting[task_id] = sum(
                    1 for p in info.parents if self.settled_status(p) is None
                )
            elif decision is TaskStatus.SCHEDULED:
                ready.append(task_id)
                self.waiting[task_id] = 0
            else:
                retry = self.next_retry.pop(task_id, 0)
                self.latest[task_id] = (retry, decision)
                settled.append((task_id, retry, decision))
        self.unfinished = sum(
            1 for t in self.dag.tasks if t not in self.latest or not self.latest[t][1].is_terminal
        )
        return Settlement(ready, settled)

    # ------------------------------------------------------------------ progress

    def start(self, task_ids: Iterable[str]) -> list[tuple[str, int, TaskStatus]]:
        """New attempts of ``task_ids``: returns (task_id, retry, SCHEDULED) of each."""
        started = []
        for task_id in task_ids:
            retry = self.next_retry.pop(task_id, 0)
            self.waiting.pop(task_id, None)
            self.latest[task_id] = (retry, TaskStatus.SCHEDULED)
            started.append((task_id, retry, TaskStatus.SCHEDULED))
        return started

    def settle_children(self, task_id: str, skip: Collection[str] = ()) -> Settlement:
        """``task_id`` has finished: decide what its children (and theirs, in turn) do.

        Children in ``skip`` (not followed by a branch) become SKIPPED; a child
        settled without running settles its own children in turn (a skip or an
        upstream failure cascades). Tasks still waiting for parents are left.
        """
        ready: list[str] = []
        settled: list[tuple[str, int, TaskStatus]] = []
        waiting = self.waiting
        tasks = self.dag.tasks
        stack = [(task_id, skip)]
        while stack:
            parent, skipped = stack.pop()
            parent_status = self.latest[parent][1]
            for child in tasks[parent].children:
                if child not in waiting or child in ready:
                    continue
                waiting[child] -= 1
                if child in skipped:
                    decision: TaskStatus | None = TaskStatus.SKIPPED
                elif (
                    parent_status is TaskStatus.SUCCESS
                    and waiting[child] > 0
                    and tasks[child].trigger_rule in _WAIT_ON_SUCCESS
                ):
                    continue  # the common case, without looking at every parent
                else:
                    decision = self.decide(child)
                if decision is None:
                    continue
                if decision is TaskStatus.SCHEDULED:
                    ready.append(child)
                    continue
                del waiting[child]
                retry = self.next_retry.pop(child, 0)
                self.latest[child] = (retry, decision)
                self.unfinished -= 1
                settled.append((child, retry, decision))
                stack.append((child, ()))
        return Settlement(ready, settled)

    def skipped_by_branch(self, task_id: str, branch: list[str]) -> set[str]:
        """The children of ``task_id`` its ``branch`` (the children to follow) leaves out."""
        return set(self.dag.tasks[task_id].children) - set(branch)

    def fail_unstarted(self) -> list[tuple[str, int, TaskStatus]]:
        """The run is ending early: every task without an attempt becomes UPSTREAM_FAILED.

        Returns those (task_id, retry, status); nothing waits any more.
        """
        failed = []
        for task_id in self.dag.tasks:
            if task_id not in self.latest:
                retry = self.next_retry.pop(task_id, 0)
                self.latest[task_id] = (retry, TaskStatus.UPSTREAM_FAILED)
                failed.append((task_id, retry, TaskStatus.UPSTREAM_FAILED))
        self.waiting.clear()
        return failed

    def is_failed(self) -> bool:
        """Whether the finished run failed.

        It did when a task could not run for an upstream failure, or a task
        failed for good and no ``one_failed`` child of it (an error handler)
        succeeded.
        """
        for task_id, (_, status) in self.latest.items():
            if status is TaskStatus.UPSTREAM_FAILED:
                return True
            if status is TaskStatus.FAILED and not self._failure_handled(task_id):
                return True
        return False

    def _failure_handled(self, task_id: str) -> bool:
        return any(
            self.dag.tasks[c].trigger_rule is TriggerRule.ONE_FAILED
            and self.latest.get(c, (0, None))[1] is TaskStatus.SUCCESS
            for c in self.dag.tasks[task_id].children
        )
