"""The one-process start's channel: the executor's calls reach the app on its loop.

``ppacer run`` puts scheduler and executor in one process; the executor's
client hands its requests to the scheduler's ASGI app directly
(:class:`ppacer.api.inprocess.InProcess`). It must behave as the HTTP
transport does: the same answers, the same errors (a token checked, a 4xx
mapped, a scheduler not serving is "unavailable"), long polls that wait and
wake, and no task lost.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

import ppacer
from ppacer.api.client import Client
from ppacer.api.inprocess import InProcess
from ppacer.dag.status import TaskStatus
from ppacer.errors import NotFoundError, SchedulerUnavailableError, UnauthorizedError
from ppacer.local import LocalRunner
from ppacer.scheduler.config import DEFAULT_CONFIG
from tests.conftest import query, wait_for, wait_run_finished


class Noop(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> None:
        ctx.logger.info("ran %s", ctx.task_id)


def registry() -> ppacer.Registry:
    root = ppacer.Node(Noop("a"))
    root.next(Noop("b")).next(Noop("c"))
    start = datetime(2024, 1, 1, tzinfo=UTC)
    dag = ppacer.Dag("chain").add_schedule(ppacer.FixedSchedule(start, 86400)).add_root(root)
    return ppacer.Registry([dag.done()])


def channel_of(runner: LocalRunner) -> InProcess:
    return InProcess(runner.app, lambda: runner.scheduler.loop)


def test_one_process_runs_a_dag_through_the_channel(
    start_local: Callable[..., LocalRunner],
) -> None:
    runner = start_local(registry())
    assert runner.executor is not None
    transport = runner.executor.client._transport
    assert [type(h).__name__ for h in transport._hosts] == ["InProcess"]
    run = runner.client.trigger_dag_run("chain")
    db = runner.scheduler.engine.url.database
    assert db is not None
    wait_run_finished(db, "chain")
    rows = query(
        db,
        "SELECT TaskId, Status FROM dagruntasks WHERE DagId='chain' AND ExecTs=? ORDER BY TaskId",
        (run.execTs,),
    )
    assert [(r["TaskId"], r["Status"]) for r in rows] == [
        ("a", "SUCCESS"),
        ("b", "SUCCESS"),
        ("c", "SUCCESS"),
    ]
    # Task logs went through the channel too (shipped, then stored by the scheduler).
    wait_for(
        lambda: any(
            "ran b" in record.message
            for record in runner.client.get_task_logs(run.runId, "b").records
        ),
        what="task b's log line stored",
    )


def test_answers_and_errors_are_the_http_ones(start_local: Callable[..., LocalRunner]) -> None:
    runner = start_local(registry(), with_executor=False)
    client = Client(runner.url, in_process=channel_of(runner))
    assert client.get_state() == runner.client.get_state()
    assert client.list_dags().model_dump() == runner.client.list_dags().model_dump()
    with pytest.raises(NotFoundError, match="nope"):
        client.trigger_dag_run("nope")
    # Nothing waits: a poll with no wait answers 204, read as "no task".
    assert client.get_task(executor="x") is None


def test_a_long_poll_waits_and_is_woken_by_a_new_run(
    start_local: Callable[..., LocalRunner],
) -> None:
    runner = start_local(registry(), with_executor=False)
    client = Client(runner.url, in_process=channel_of(runner))
    got: list[Any] = []
    polled = threading.Thread(target=lambda: got.append(client.get_task(10.0, "e1")))
    polled.start()
    runner.client.trigger_dag_run("chain")
    polled.join(15)
    assert not polled.is_alive()
    assert got and got[0] is not None and got[0].task_id == "a"
    client.upsert_task_status(got[0], TaskStatus.SUCCESS)


def test_the_token_is_checked(start_local: Callable[..., LocalRunner]) -> None:
    config = dataclasses.replace(DEFAULT_CONFIG, api_token="s3cret-token")
    runner = start_local(registry(), with_executor=False, config=config)
    channel = channel_of(runner)
    with pytest.raises(UnauthorizedError) as caught:
        Client(runner.url, in_process=channel).trigger_dag_run("chain")
    assert "s3cret" not in str(caught.value)
    answer = Client(runner.url, token="s3cret-token", in_process=channel).trigger_dag_run("chain")
    assert answer.dagId == "chain"


def test_a_scheduler_not_serving_is_unavailable(start_local: Callable[..., LocalRunner]) -> None:
    runner = start_local(registry(), with_executor=False)
    not_yet = Client(runner.url, in_process=InProcess(runner.app, lambda: None))
    with pytest.raises(SchedulerUnavailableError, match="not serving"):
        not_yet.get_state()
    client = Client(runner.url, in_process=channel_of(runner))
    assert client.get_state() is not None
    runner.stop()
    with pytest.raises(SchedulerUnavailableError):
        client.get_state()


@pytest.fixture
def loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop

    async def drain() -> None:  # requests given up finish their cancellation first
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run_coroutine_threadsafe(drain(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_an_answer_not_given_in_time_is_a_timeout(loop_thread: asyncio.AbstractEventLoop) -> None:
    started = threading.Event()
    cancelled = threading.Event()

    async def stuck(scope: Any, receive: Any, send: Any) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    channel = InProcess(stuck, lambda: loop_thread)
    with pytest.raises(TimeoutError):
        channel.request("GET", "/state", body=None, params=None, timeout_s=0.2, resendable=False)
    assert started.is_set()
    # The request given up is not left running on the scheduler's loop.
    assert cancelled.wait(5)
    client = Client("http://in-process", timeout_s=0.2, in_process=channel)
    with pytest.raises(SchedulerUnavailableError, match="timed out"):
        client.get_state()


def test_the_request_is_the_one_sent(loop_thread: asyncio.AbstractEventLoop) -> None:
    seen: dict[str, Any] = {}

    async def echo(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        seen.update(scope=scope, body=message["body"])
        await send({"type": "http.response.start", "status": 201, "headers": [(b"X-A", b"1")]})
        await send({"type": "http.response.body", "body": b'{"ok":', "more_body": True})
        await send({"type": "http.response.body", "body": b" true}"})

    channel = InProcess(echo, lambda: loop_thread, {"Authorization": "Bearer t"})
    answer = channel.request(
        "POST", "/dag/x", body={"a": 1}, params={"q": "v w"}, timeout_s=5, resendable=False
    )
    assert (answer.status_code, answer.json(), answer.headers) == (201, {"ok": True}, {"x-a": "1"})
    scope = seen["scope"]
    assert (scope["method"], scope["path"], scope["query_string"]) == ("POST", "/dag/x", b"q=v+w")
    headers = dict(scope["headers"])
    assert headers[b"authorization"] == b"Bearer t"
    assert headers[b"content-type"] == b"application/json"
    assert seen["body"] == b'{"a": 1}'
