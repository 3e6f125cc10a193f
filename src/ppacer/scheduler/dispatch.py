"""Handing out attempts: the ready queue, who may take what, leases on what was taken.

:class:`Dispatch` turns an attempt made ready by a committed transaction into a
:class:`~ppacer.api.models.TaskToExec` in the ready queue, hands the queued
ones to executors' polls (leased, and RUNNING from then on), and puts back one
that could not be handed over. It holds no state of its own but the queue and
the router; runs, leases and progress belong to the task scheduler, which
builds it. Everything runs on the scheduler's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ppacer.api.models import TaskToExec
from ppacer.dag.status import TaskStatus
from ppacer.scheduler.leases import LeaseKeeper
from ppacer.scheduler.progress import RunProgress
from ppacer.scheduler.ready_queue import ReadyQueue
from ppacer.scheduler.router import Router
from ppacer.scheduler.runstate import RunState
from ppacer.scheduler.timers import Timers

__all__ = ["Dispatch"]

# Longest a handed-out attempt's RUNNING row waits to be written (batched with others).
RUNNING_FLUSH_S = 0.02


class Dispatch:
    """The ready queue of the active runs' attempts and their hand-out to executors."""

    def __init__(
        self,
        active: dict[tuple[str, str], RunState],
        leases: LeaseKeeper,
        progress: RunProgress,
        timers: Timers,
        *,
        writable: Callable[[], bool],
        leased: Callable[[], None],
        flush_running: Callable[[], None],
    ) -> None:
        self.active = active
        self.leases = leases
        self.progress = progress
        self.timers = timers
        self._writable = writable
        self._leased = leased
        self._flush_running = flush_running
        #: Ready attempts and the long polls waiting for them.
        self.ready: ReadyQueue[TaskToExec] = ReadyQueue(self.is_current)
        #: Which executor may take which queued attempt (queues, code versions).
        self.router = Router(active, leases, self.ready, self.is_current)
        # > 0 while a report's sender takes the attempts it made ready (holding).
        self._holds = 0

    def is_current(self, item: TaskToExec) -> bool:
        """Whether ``item`` is still its task's latest attempt, SCHEDULED (else it is dropped)."""
        state = self.active.get((item.dag_id, item.exec_ts))
        return state is not None and state.latest.get(item.task_id) == (
            item.retry,
            TaskStatus.SCHEDULED,
        )

    def push(self, state: RunState, task_id: str, retry: int) -> None:
        """Queue an attempt a committed transaction scheduled."""
        item = TaskToExec(
            state.dag.id,
            state.exec_ts,
            task_id,
            retry,
            state.run_id,
            state.params,
            state.upstream_outputs(task_id),
            code_version=state.dag.tasks[task_id].code_version,
        )
        config = state.dag.tasks[task_id].config
        self.ready.push(item, config.priority, config.queue)

    def offer(self) -> None:
        """Hand queued attempts to the long polls waiting (unless :meth:`holding`)."""
        if not self._holds:
            self.ready.dispatch()

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Within the block, attempts made ready wait in the queue instead of going to the
        long polls waiting; they go to them at its end.

        For one round trip per hop: a report's sender takes what its report made
        ready (``POST /dag/task/update/pop``) before any waiting poll does.
        """
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            self.offer()

    async def pop_many(self, wait_s: float, executor: str | None, max_n: int) -> list[TaskToExec]:
        """Up to ``max_n`` ready attempts (waiting up to ``wait_s`` for the first), leased.

        While the database is away nothing is handed out: the poll ends empty.
        """
        if executor is not None:
            self.leases.seen(executor)
        if not self._writable():
            await asyncio.sleep(wait_s)
            return []
        cap = self.router.capability(executor)
        requirement = self.router.requirement
        accepts = None if cap.versions is None else (lambda i: cap.can_run(requirement(i)))
        item = self.ready.take(cap.queues, accepts)
        if item is None and wait_s > 0:
            item = await self.ready.wait(wait_s, cap.queues, accepts)
        if item is None:
            return []
        items = [self._lease(item, executor)]
        while len(items) < max_n:
            item = self.ready.take(cap.queues, accepts)
            if item is None:
                break
            items.append(self._lease(item, executor))
        return items

    def _lease(self, item: TaskToExec, executor: str | None) -> TaskToExec:
        state = self.active[(item.dag_id, item.exec_ts)]
        leased = self.leases.lease(item, executor, state.dag.tasks[item.task_id].config.timeout_s)
        self._leased()
        return leased

    def requeue_front(self, item: TaskToExec) -> None:
        """Put back an attempt that could not be handed over; it is the next one out."""
        self.ready.push_front(self.leases.take_back(item), self.router.requirement(item).queue)

    def start_attempt(self, item: TaskToExec, executor: str | None = None) -> TaskToExec:
        """The attempt was handed to ``executor``: it is RUNNING from now on.

        Saves the executor a RUNNING report (a repeated one is a no-op). The
        RUNNING row - with when it started, the executor and the code version it
        has - is written with the next transaction, at most :data:`RUNNING_FLUSH_S`
        later; a quick task's final report writes it at once (see
        :meth:`RunProgress.mark_running`).
        """
        state = self.active.get((item.dag_id, item.exec_ts))
        if state is None:
            return item  # not current any more
        router = self.router
        version = router.capability(executor).code_version_of(router.requirement(item))
        if not self.progress.mark_running(state, item.task_id, item.retry, executor, version):
            return item  # RUNNING already
        self.timers.flush_soon(RUNNING_FLUSH_S, self._flush_running)
        return item.with_lease(item.lease_token, item.lease_timeout_s, str(TaskStatus.RUNNING))
