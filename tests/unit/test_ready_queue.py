"""The ready queue: priority then arrival order, put-back at the front, long polls in line."""

from __future__ import annotations

import asyncio
import random

from ppacer.scheduler.ready_queue import ReadyQueue


def take_all(queue: ReadyQueue[str]) -> list[str]:
    out = []
    while (item := queue.take()) is not None:
        out.append(item)
    return out


def test_higher_priority_first_and_first_in_first_out_within_a_priority() -> None:
    rng = random.Random(7)
    items = [(f"t{i}", rng.choice([-1, 0, 0, 3, 10])) for i in range(200)]
    queue: ReadyQueue[str] = ReadyQueue()
    for name, priority in items:
        queue.push(name, priority)
    assert len(queue) == len(items)
    by_priority_then_arrival = sorted(range(len(items)), key=lambda i: (-items[i][1], i))
    assert take_all(queue) == [items[i][0] for i in by_priority_then_arrival]
    assert len(queue) == 0


def test_attempts_put_back_come_out_next_in_the_order_they_were_taken() -> None:
    queue: ReadyQueue[str] = ReadyQueue()
    for name, priority in [("a", 0), ("b", 5), ("c", 0), ("d", 99)]:
        queue.push(name, priority)
    batch = [queue.take(), queue.take()]
    assert batch == ["d", "b"]
    # The poller hung up: its batch goes back, last first, as the server does.
    for item in reversed(batch):
        assert item is not None
        queue.push_front(item)
    queue.push("e", 1000)  # a higher priority arriving later does not jump a put-back
    assert take_all(queue) == ["d", "b", "e", "a", "c"]


def test_attempts_no_longer_current_are_dropped_when_they_come_out() -> None:
    stale = {"b", "d"}
    queue: ReadyQueue[str] = ReadyQueue(lambda item: item not in stale)
    for name in "abcde":
        queue.push(name)
    assert take_all(queue) == ["a", "c", "e"]


def test_drain_returns_everything_in_the_order_it_would_come_out() -> None:
    queue: ReadyQueue[str] = ReadyQueue()
    for name, priority in [("a", 0), ("b", 1), ("c", 0)]:
        queue.push(name, priority)
    queue.push_front("z")
    expected = ["z", "b", "a", "c"]
    assert queue.drain() == expected
    assert len(queue) == 0 and queue.take() is None


async def _line_up(queue: ReadyQueue[str], n: int) -> list[asyncio.Task[str | None]]:
    """Start ``n`` long polls, one after another (each waits in line before the next)."""
    polls = []
    for _ in range(n):
        polls.append(asyncio.create_task(queue.wait(60)))
        while queue.waiters < len(polls):
            await asyncio.sleep(0)  # let the poll reach the line
    return polls


def test_waiting_polls_get_items_in_the_order_they_started_waiting() -> None:
    async def scenario() -> list[str | None]:
        queue: ReadyQueue[str] = ReadyQueue()
        polls = await _line_up(queue, 3)
        for name, priority in [("low", 0), ("high", 9), ("mid", 5)]:
            queue.push(name, priority)
        queue.dispatch()
        assert len(queue) == 0
        return list(await asyncio.gather(*polls))

    # The longest-waiting poll gets the highest priority.
    assert asyncio.run(scenario()) == ["high", "mid", "low"]


def test_an_item_put_back_goes_to_a_waiting_poll_first() -> None:
    async def scenario() -> tuple[str | None, int]:
        queue: ReadyQueue[str] = ReadyQueue()
        (poll,) = await _line_up(queue, 1)
        queue.push_front("back")
        return await poll, len(queue)

    assert asyncio.run(scenario()) == ("back", 0)


def test_more_items_than_polls_stay_queued_in_order() -> None:
    async def scenario() -> tuple[list[str | None], list[str]]:
        queue: ReadyQueue[str] = ReadyQueue()
        polls = await _line_up(queue, 2)
        for name in ["a", "b", "c", "d"]:
            queue.push(name)
        queue.dispatch()
        return list(await asyncio.gather(*polls)), take_all(queue)

    assert asyncio.run(scenario()) == (["a", "b"], ["c", "d"])


def test_releasing_waiters_answers_every_poll_with_nothing() -> None:
    async def scenario() -> list[str | None]:
        queue: ReadyQueue[str] = ReadyQueue()
        polls = await _line_up(queue, 3)
        queue.release_waiters()
        assert queue.waiters == 0
        return list(await asyncio.gather(*polls))

    assert asyncio.run(scenario()) == [None, None, None]


def test_a_poll_that_gave_up_gets_nothing_and_leaves_the_item_queued() -> None:
    async def scenario() -> tuple[str | None, list[str]]:
        queue: ReadyQueue[str] = ReadyQueue()
        result = await queue.wait(0.001)  # a short long poll that times out
        queue.push("later")
        queue.dispatch()
        return result, take_all(queue)

    assert asyncio.run(scenario()) == (None, ["later"])
