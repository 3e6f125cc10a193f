"""The worker threads that run attempts, and the slots that bound how many run at once.

The poll loop reserves free slots, asks the scheduler for that many attempts
and hands each to a worker; a worker frees its slot when its attempt ends.
Workers are daemon threads started as needed up to the pool's size: once the
executor has given up on a task stuck in one, the process can still exit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from queue import SimpleQueue

from ppacer.api.models import TaskToExec
from ppacer.executor.attempt import describe, log_ids
from ppacer.timeutils import monotonic

__all__ = ["WorkerPool"]

log = logging.getLogger("ppacer.executor")


class WorkerPool:
    """Up to ``size`` worker threads calling ``work`` on the attempts handed to them.

    ``work`` may return the worker's next attempt (taken with its report): the
    worker runs it on the same slot, with no hand-over to another thread.
    """

    def __init__(
        self, size: int, name: str, work: Callable[[TaskToExec], TaskToExec | None]
    ) -> None:
        self.size = size
        self._name = name
        self._work = work
        self._slots = threading.Semaphore(size)
        self._queue: SimpleQueue[TaskToExec | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        # Attempts handed over and not ended yet; stop() waits for none.
        self._running = 0
        self._idle = threading.Condition(threading.Lock())

    @property
    def running(self) -> int:
        """How many attempts are handed over and not ended."""
        return self._running

    def reserve(self, stop: threading.Event) -> int:
        """Wait for a free slot and take every free one; 0 once ``stop`` is set."""
        while not self._slots.acquire(timeout=0.5):
            if stop.is_set():
                return 0
        free = 1
        while free < self.size and self._slots.acquire(blocking=False):
            free += 1
        return free

    def release(self, n: int) -> None:
        """Give back ``n`` reserved slots that got no attempt."""
        for _ in range(n):
            self._slots.release()

    def submit(self, task: TaskToExec) -> None:
        """Hand ``task`` to a worker (on a slot reserved for it)."""
        with self._idle:
            self._running += 1
        self._queue.put(task)
        if len(self._threads) < self.size:
            thread = threading.Thread(
                target=self._loop,
                name=f"ppacer-task-{self._name}-{len(self._threads)}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def wait_idle(self, deadline: float) -> bool:
        """Wait until no attempt runs, or ``deadline`` (monotonic) passes; True if none runs."""
        with self._idle:
            while self._running and monotonic() < deadline:
                self._idle.wait(max(0.0, deadline - monotonic()))
            return self._running == 0

    def stop(self, *, join: bool) -> None:
        """Tell the workers to end once idle; with ``join``, wait for them (up to 5 s each)."""
        for _ in self._threads:
            self._queue.put(None)
        if join:
            for thread in self._threads:
                thread.join(5.0)

    def _loop(self) -> None:
        """A worker thread: run attempts until told to stop (None)."""
        while (first := self._queue.get()) is not None:
            task: TaskToExec | None = first
            try:
                while task is not None:
                    current, task = task, None
                    task = self._work(current)
            except BaseException:
                # An executor bug, not the task's (the runner turns those into outcomes):
                # log it and keep the thread for the next attempt.
                log.exception(
                    "executor error while running %s", describe(current), extra=log_ids(current)
                )
            finally:
                with self._idle:
                    self._running -= 1
                    self._idle.notify_all()
                self._slots.release()
