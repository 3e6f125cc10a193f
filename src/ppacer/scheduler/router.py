"""The router of one task scheduler: what queued attempts need, what executors have.

See :mod:`ppacer.scheduler.routing` for the rules; this module applies them to
the task scheduler's runs, executors and ready queue.
"""

from __future__ import annotations

from collections.abc import Callable

from ppacer.api.models import TaskToExec
from ppacer.scheduler.leases import LeaseKeeper
from ppacer.scheduler.ready_queue import ReadyQueue
from ppacer.scheduler.routing import ANONYMOUS, Capability, Requirement, waiting_reason
from ppacer.scheduler.runstate import RunState

__all__ = ["Router"]


class Router:
    """Requirements of queued attempts and capabilities of executors, for one task scheduler."""

    def __init__(
        self,
        active: dict[tuple[str, str], RunState],
        leases: LeaseKeeper,
        ready: ReadyQueue[TaskToExec],
        is_current: Callable[[TaskToExec], bool],
    ) -> None:
        self._active = active
        self._leases = leases
        self._ready = ready
        self._is_current = is_current

    def requirement(self, item: TaskToExec) -> Requirement:
        """What ``item`` needs of an executor: its task's queue and code version."""
        info = self._active[(item.dag_id, item.exec_ts)].dag.tasks[item.task_id]
        return Requirement(info.config.queue, item.dag_id, item.task_id, info.code_version)

    def capability(self, executor: str | None) -> Capability:
        """What ``executor`` serves and has (an unregistered one: the default queue, any code)."""
        info = self._leases.executors.get(executor) if executor is not None else None
        return info.capability if info is not None else ANONYMOUS

    def register(self, executor: str, capability: Capability, ppacer_version: str | None) -> None:
        """Record what ``executor`` serves and has; queued attempts it may take go to it now."""
        info = self._leases.seen(executor)
        info.capability, info.registered, info.ppacer_version = capability, True, ppacer_version
        self._ready.dispatch()

    def waiting(self, connected_within_s: float) -> list[tuple[TaskToExec, str]]:
        """Queued attempts no executor heard from in ``connected_within_s`` may take, and why."""
        executors = [(e.name, e.capability) for e in self._leases.view(connected_within_s)]
        out = []
        for _, item in self._ready.peek_all():
            if self._is_current(item):
                reason = waiting_reason(self.requirement(item), executors)
                if reason is not None:
                    out.append((item, reason))
        return out
