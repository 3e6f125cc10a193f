"""Which executor may take which attempt: the queues it serves and the code it has.

An executor that registers (``POST /executor/register``) names the queues it
serves and, per DAG and task, the code version it has; it is handed only
attempts of those queues whose task's code version it has exactly. One that
never registers (the original's executor, an older ppacer) serves the default
queue and runs any version: what it ran is recorded as unknown.

A task's queue and code version are those of the DAG object its run uses
(:attr:`RunState.dag`), so a run keeps the code it started with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ppacer.scheduler.ready_queue import DEFAULT_QUEUE

__all__ = ["ANONYMOUS", "Capability", "Requirement", "waiting_reason"]


@dataclass(frozen=True, slots=True)
class Requirement:
    """What an attempt needs of an executor."""

    queue: str
    dag_id: str
    task_id: str
    code_version: str


@dataclass(frozen=True, slots=True)
class Capability:
    """What an executor serves and has."""

    queues: frozenset[str] = frozenset({DEFAULT_QUEUE})
    # DAG id -> task id -> code version; None: it announced none (takes any version).
    versions: Mapping[str, Mapping[str, str]] | None = None
    # Older versions it still holds for runs started before a hot reload.
    retained: Mapping[str, Mapping[str, frozenset[str]]] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)

    def can_run(self, need: Requirement) -> bool:
        """Whether the executor may take an attempt that needs ``need``."""
        if need.queue not in self.queues:
            return False
        if self.versions is None:
            return True
        if self.versions.get(need.dag_id, {}).get(need.task_id) == need.code_version:
            return True
        return need.code_version in self.retained.get(need.dag_id, {}).get(need.task_id, ())

    def code_version_of(self, need: Requirement) -> str | None:
        """The code version it will run for ``need`` (None: unknown, it announced none)."""
        return None if self.versions is None else need.code_version


#: An executor that announced nothing.
ANONYMOUS = Capability()


def waiting_reason(need: Requirement, executors: Iterable[tuple[str, Capability]]) -> str | None:
    """Why no connected executor may take an attempt (None: one may).

    The reason names the queue and the code version needed, and what the
    executors of that queue have instead.
    """
    of_queue = []
    for name, cap in executors:
        if cap.can_run(need):
            return None
        if need.queue in cap.queues:
            have = (cap.versions or {}).get(need.dag_id, {}).get(need.task_id)
            of_queue.append(f"{name} has {have or 'no such task'}")
    what = f"{need.dag_id}/{need.task_id}"
    if not of_queue:
        return f"no connected executor serves queue {need.queue!r} (task {what})"
    return (
        f"no connected executor has code version {need.code_version} of {what} "
        f"({'; '.join(of_queue)})"
    )
