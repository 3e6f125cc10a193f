"""A standby's API: every call forwarded to the leader, so any scheduler's URL works.

A standby scheduler (see :mod:`ppacer.scheduler.leadership`) answers API calls
by forwarding them, as they came, to the leader's advertised URL and streaming
the leader's answer back: executors and the CLI given a standby's URL work
through it. Health and metrics stay the standby's own. When no leader is
known (the leader just died and nobody took over yet) the standby answers
reads from the database itself and changes with 503 and a message: the
client retries.

A forwarded call carries ``X-Ppacer-Forwarded``; a standby never forwards one
again (two standbys pointing at each other answer 503 instead of looping).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ppacer.scheduler.core import SchedulerCore
from ppacer.server.adapter import error_response

__all__ = ["FORWARDED_HEADER", "LeaderProxy"]

#: Set on calls a standby forwarded.
FORWARDED_HEADER = "x-ppacer-forwarded"
# Seconds to connect to the leader, and to wait for its answer past a long poll's own
# wait: a leader that does not answer within it is frozen or gone (a takeover follows
# within seconds); the caller gets a 503 and asks again.
_CONNECT_TIMEOUT_S = 2.0
_READ_SLACK_S = 5.0
# Hop-by-hop headers, not forwarded either way.
_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host", "content-length"}
)


class LeaderProxy:
    """Forwards a standby's API calls to the leader."""

    def __init__(self, scheduler: SchedulerCore) -> None:
        self.scheduler = scheduler

    def applies(self) -> bool:
        """Whether calls are forwarded now (this scheduler stands by)."""
        return self.scheduler.is_standby

    async def forward(self, request: Request) -> Response | None:
        """The leader's answer to ``request``, 503 saying why there is none, or None.

        None: no leader is known and ``request`` is a read; this scheduler answers it.
        """
        leader = self.scheduler.leader_url()
        if leader is None and request.method in ("GET", "HEAD"):
            return None
        if request.headers.get(FORWARDED_HEADER):
            return error_response(
                503, "this scheduler stands by and does not forward a forwarded call; retry"
            )
        if leader is None:
            return error_response(
                503,
                "this scheduler stands by and no leader is known now (a takeover is "
                "under way?); retry",
            )
        body = await request.body()
        read_timeout_s = _long_poll_s(request, self.scheduler.config.max_pop_wait_s) + _READ_SLACK_S
        try:
            reader, writer = await asyncio.wait_for(_connect(leader), _CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            return error_response(
                503,
                f"this scheduler stands by and the leader at {leader} is unreachable "
                f"({type(exc).__name__}); retry",
            )
        try:
            writer.write(_request_head(request, leader, len(body)) + body)
            await writer.drain()
            status, headers = await asyncio.wait_for(_read_head(reader), read_timeout_s)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            writer.close()
            return error_response(
                503,
                f"this scheduler stands by and the leader at {leader} did not answer "
                f"({type(exc).__name__}); retry",
            )
        chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        length = headers.get("content-length")
        return StreamingResponse(
            _body(reader, writer, chunked, int(length) if length else None, read_timeout_s),
            status_code=status,
            headers={k: v for k, v in headers.items() if k not in _HOP},
        )


def _long_poll_s(request: Request, cap_s: float) -> float:
    """How long the leader may hold ``request`` by design (a long poll's ``wait_s``)."""
    try:
        wait_s = float(request.query_params.get("wait_s", 0))
    except ValueError:
        return 0.0
    return min(max(wait_s, 0.0), cap_s) if wait_s == wait_s else 0.0


async def _connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    context = ssl.create_default_context() if tls else None
    return await asyncio.open_connection(parts.hostname, port, ssl=context)


def _request_head(request: Request, leader: str, length: int) -> bytes:
    parts = urlsplit(leader)
    target = parts.path.rstrip("/") + request.url.path
    if request.url.query:
        target += "?" + request.url.query
    lines = [f"{request.method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() not in _HOP]
    lines += [f"{FORWARDED_HEADER}: 1", f"Content-Length: {length}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
    return status, headers


async def _body(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    chunked: bool,
    length: int | None,
    timeout_s: float,
) -> AsyncIterator[bytes]:
    try:
        if chunked:
            while True:
                size_line = await asyncio.wait_for(reader.readline(), timeout_s)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    break
                chunk = await asyncio.wait_for(reader.readexactly(size + 2), timeout_s)
                yield chunk[:-2]
        elif length is not None:
            if length:
                yield await asyncio.wait_for(reader.readexactly(length), timeout_s)
        else:
            while chunk := await asyncio.wait_for(reader.read(65536), timeout_s):
                yield chunk
    finally:
        writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await writer.wait_closed()
