"""Requests to an ASGI app served in this process: the one-process start's channel.

In ``ppacer run`` the executor and the scheduler share one process. The
executor's client still sends every call of the route table to the
scheduler's ASGI app (the same adapter, validation and handlers a remote
executor meets), but :class:`InProcess` hands the request to the app's event
loop directly instead of writing HTTP to a loopback socket and parsing it on
both sides. In one process every microsecond of either side is on a hop's
path, since they share the GIL: measured just before and after this channel
(BENCHMARKS.md, "Results, 2026-12-04 evening"), ``ppacer run`` went from 6.2
to 2.0 ms for a one-task run and from 35 to 24 ms for a chain of 50.

It has the interface of the HTTP host of :mod:`ppacer.api.transport`:
requests that cannot be delivered (the loop is not running yet, or any more)
raise :class:`ConnectionRefusedError`, ones not answered in time
:class:`TimeoutError`, so the transport's error mapping is the same.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import threading
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any
from urllib.parse import urlencode

from ppacer.api.transport import HttpAnswer

__all__ = ["Asgi", "InProcess"]

Message = MutableMapping[str, Any]
#: An ASGI application: ``await app(scope, receive, send)``.
Asgi = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


class InProcess:
    """Sends requests to ``app`` on the event loop ``loop()`` returns (None: not serving).

    ``headers`` go with every request, as the HTTP host sends them. Thread-safe:
    any thread but the loop's own may call :meth:`request`.
    """

    def __init__(
        self,
        app: Asgi,
        loop: Callable[[], asyncio.AbstractEventLoop | None],
        headers: dict[str, str] | None = None,
    ) -> None:
        self._app = app
        self._loop = loop
        self._headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in {"Accept": "application/json", **(headers or {})}.items()
        ]

    def with_headers(self, headers: dict[str, str]) -> InProcess:
        """This channel, sending ``headers`` too (a client's token and actor)."""
        return InProcess(self._app, self._loop, headers)

    @property
    def is_https(self) -> bool:
        """False: nothing leaves the process."""
        return False

    def close(self) -> None:
        """Nothing to close."""

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any,
        params: dict[str, Any] | None,
        timeout_s: float,
        resendable: bool,
    ) -> HttpAnswer:
        """One request, answered by the app on its loop; raises as a socket would."""
        del resendable  # nothing is lost between two threads of one process
        loop = self._loop()
        if loop is None or loop.is_closed() or not loop.is_running():
            raise ConnectionRefusedError("the scheduler in this process is not serving")
        data = b"" if body is None else jsonlib.dumps(body, allow_nan=False).encode()
        headers = list(self._headers)
        if body is not None:
            headers.append((b"content-type", b"application/json"))
            headers.append((b"content-length", str(len(data)).encode()))
        scope: Message = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": urlencode(params).encode() if params else b"",
            "headers": headers,
            "client": ("127.0.0.1", 0),
            "server": ("127.0.0.1", 0),
            "state": {},
        }
        exchange = _Exchange(data)
        call = _Call()

        async def serve() -> None:
            await self._app(scope, exchange.receive, exchange.send)

        try:
            loop.call_soon_threadsafe(call.start, loop, serve)
        except RuntimeError as exc:  # the loop closed meanwhile
            raise ConnectionRefusedError(f"the scheduler in this process stopped: {exc}") from None
        if not call.done.acquire(timeout=timeout_s):
            loop.call_soon_threadsafe(call.cancel)
            raise TimeoutError("timed out")
        if isinstance(call.error, asyncio.CancelledError):
            raise ConnectionResetError("the scheduler in this process stopped") from None
        if call.error is not None:
            raise call.error
        if exchange.status is None:
            raise ConnectionResetError("the scheduler in this process sent no answer")
        return HttpAnswer(exchange.status, b"".join(exchange.body), exchange.headers)


class _Call:
    """One request's task on the loop and how it ended, for the calling thread.

    Lighter than :func:`asyncio.run_coroutine_threadsafe` (no chained future, one
    lock as the signal): the hand-off is on every call of the executor in one
    process, where it cost 12 % of the busy samples (BENCHMARKS.md).
    """

    __slots__ = ("done", "error", "task")

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()  # released when the task ends, however it ends
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None

    def start(
        self, loop: asyncio.AbstractEventLoop, serve: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        self.task = loop.create_task(serve())
        self.task.add_done_callback(self._ended)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _ended(self, task: asyncio.Task[None]) -> None:
        # Also for a task cancelled before it ran (the loop stopping): its body never ran.
        self.error = asyncio.CancelledError() if task.cancelled() else task.exception()
        self.done.release()


class _Exchange:
    """One request's ASGI messages: the body to receive, the answer sent."""

    __slots__ = ("_gone", "_request", "body", "headers", "status")

    def __init__(self, data: bytes) -> None:
        self._request: bytes | None = data
        self._gone: asyncio.Event | None = None
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []

    async def receive(self) -> Message:
        if self._request is not None:
            data, self._request = self._request, None
            return {"type": "http.request", "body": data, "more_body": False}
        # The caller waits for the answer until it is sent: never gone before that.
        if self._gone is None:
            self._gone = asyncio.Event()
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {
                k.decode("latin-1").lower(): v.decode("latin-1")
                for k, v in message.get("headers", ())
            }
        elif message["type"] == "http.response.body":
            self.body.append(message.get("body", b""))
            if not message.get("more_body", False) and self._gone is not None:
                self._gone.set()
