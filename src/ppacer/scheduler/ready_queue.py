"""Ready task attempts waiting for an executor, by queue, and the long polls waiting for them.

Each queue (``TaskConfig.queue``) is a heap: the highest priority first and,
within a priority, first in first out. An attempt put back (its poller hung
up) goes to the very front of its queue. A poll takes from the queues its
executor serves (the best head among them) and only what its executor
accepts (``accepts``: the code version it has); an attempt it may not take is
left where it was. A long poll that finds nothing waits in line: a new attempt
goes to the poll that has waited longest among those that may take it,
without passing through the heap.

The queue never decides whether an attempt still matters: the task scheduler
gives it ``is_current``, and attempts that stopped being current while queued
(their run timed out or was marked) are dropped when they come out.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["DEFAULT_QUEUE", "ReadyQueue"]

T = TypeVar("T")

#: The queue of tasks that name none, served by executors that name none.
DEFAULT_QUEUE = "default"
# Priority of an attempt put back at the front: ahead of any task's own priority.
_FRONT = -(10**9)
# (-priority, sequence, item): the sequence keeps FIFO order within a priority and counts
# down for items put back at the front.
_Entry = tuple[int, int, T]


def _always(_item: object) -> bool:
    return True


@dataclass(eq=False, slots=True)
class _Waiter(Generic[T]):
    future: asyncio.Future[T | None]
    queues: Collection[str]
    accepts: Callable[[T], bool] | None


class ReadyQueue(Generic[T]):
    """Attempts by queue and priority (FIFO within one), and the long polls waiting for them."""

    def __init__(self, is_current: Callable[[T], bool] = _always) -> None:
        self._heaps: dict[str, list[_Entry[T]]] = {}
        self._seq = itertools.count()
        self._front = itertools.count(-1, -1)
        self._waiters: deque[_Waiter[T]] = deque()
        self._is_current = is_current
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def waiters(self) -> int:
        """Long polls waiting for an attempt."""
        return len(self._waiters)

    def by_queue(self) -> dict[str, int]:
        """How many attempts each queue holds (stale ones included until they come out)."""
        return {name: len(heap) for name, heap in self._heaps.items() if heap}

    def push(self, item: T, priority: int = 0, queue: str = DEFAULT_QUEUE) -> None:
        """Queue ``item`` behind everything of its ``priority`` or higher in ``queue``."""
        self._put(queue, (-priority, next(self._seq), item))

    def push_front(self, item: T, queue: str = DEFAULT_QUEUE) -> None:
        """Give ``item`` to the longest-waiting poll that may take it, else put it next out."""
        if not self._hand_over(item, queue):
            self._put(queue, (_FRONT, next(self._front), item))

    def take(
        self,
        queues: Collection[str] = (DEFAULT_QUEUE,),
        accepts: Callable[[T], bool] | None = None,
    ) -> T | None:
        """The best current item of ``queues`` that ``accepts`` allows, without waiting.

        Stale items are dropped on the way; items ``accepts`` refuses stay queued.
        """
        refused: list[tuple[str, _Entry[T]]] = []
        try:
            while True:
                best = self._best_head(queues)
                if best is None:
                    return None
                entry = heapq.heappop(self._heaps[best])
                self._size -= 1
                item = entry[2]
                if not self._is_current(item):
                    continue
                if accepts is not None and not accepts(item):
                    refused.append((best, entry))
                    continue
                return item
        finally:
            for queue, entry in refused:
                self._put(queue, entry)

    async def wait(
        self,
        wait_s: float,
        queues: Collection[str] = (DEFAULT_QUEUE,),
        accepts: Callable[[T], bool] | None = None,
    ) -> T | None:
        """Wait in line up to ``wait_s`` seconds for an item of ``queues`` (after :meth:`take`).

        A separate step so that taking a queued item never creates a coroutine.
        """
        future: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(_Waiter(future, queues, accepts))
        try:
            return await asyncio.wait_for(future, wait_s)
        except TimeoutError:
            return None
        finally:
            if not future.done():
                future.cancel()

    def dispatch(self) -> None:
        """Hand queued items to waiting polls, each the best item it may take, oldest poll first."""
        if not self._waiters or not self._size:
            return
        still: deque[_Waiter[T]] = deque()
        while self._waiters:
            waiter = self._waiters.popleft()
            if waiter.future.done():
                continue
            item = self.take(waiter.queues, waiter.accepts) if self._size else None
            if item is None:
                still.append(waiter)
            else:
                waiter.future.set_result(item)
        self._waiters = still

    def release_waiters(self) -> None:
        """Answer every waiting poll with "nothing" (used when stopping)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_result(None)

    def drain(self) -> list[T]:
        """Remove and return every queued item, in the order they would come out (per queue)."""
        items = []
        for heap in self._heaps.values():
            items += [item for _, _, item in sorted(heap, key=lambda e: e[:2])]
            heap.clear()
        self._size = 0
        return items

    def remove_if(self, doomed: Callable[[T], bool]) -> int:
        """Remove the queued items ``doomed`` says so of (a run being rebuilt); how many."""
        removed = 0
        for heap in self._heaps.values():
            kept = [entry for entry in heap if not doomed(entry[2])]
            removed += len(heap) - len(kept)
            heap[:] = kept
            heapq.heapify(heap)
        self._size -= removed
        return removed

    def peek_all(self) -> list[tuple[str, T]]:
        """Every queued item with its queue (for reports on what waits, and why)."""
        return [(name, e[2]) for name, heap in self._heaps.items() for e in heap]

    def _put(self, queue: str, entry: _Entry[T]) -> None:
        heap = self._heaps.get(queue)
        if heap is None:
            heap = self._heaps[queue] = []
        heapq.heappush(heap, entry)
        self._size += 1

    def _best_head(self, queues: Collection[str]) -> str | None:
        best: str | None = None
        best_key: tuple[int, int] | None = None
        for name in queues:
            heap = self._heaps.get(name)
            if heap and (best_key is None or heap[0][:2] < best_key):
                best, best_key = name, heap[0][:2]
        return best

    def _hand_over(self, item: T, queue: str) -> bool:
        """Give ``item`` to the longest-waiting poll still waiting that may take it."""
        for waiter in self._waiters:
            if waiter.future.done() or queue not in waiter.queues:
                continue
            if waiter.accepts is not None and not waiter.accepts(item):
                continue
            self._waiters.remove(waiter)
            waiter.future.set_result(item)
            return True
        return False
