"""HTTP to one or several scheduler URLs: keep-alive connections, failover, the error mapping.

This is the only module that does HTTP. :class:`Transport` sends a route of the
table to the URL in use; with several URLs (the schedulers of one database,
``"a,b"``) it moves on while one cannot be reached or answers 503. 4xx
answers become ppacer errors carrying the scheduler's message (by
:data:`ppacer.errors.ERROR_BY_STATUS`); connection failures and 5xx answers
become :class:`~ppacer.errors.SchedulerUnavailableError`.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import re
import socket
import ssl
import threading
import time
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from ppacer.api.routes import ROUTES
from ppacer.errors import (
    ERROR_BY_STATUS,
    InvalidInputError,
    PpacerError,
    ProtocolError,
    SchedulerUnavailableError,
    TLSError,
    UnauthorizedError,
)

__all__ = ["Host", "HttpAnswer", "Transport"]

# 4xx answers that say the URL is not a ppacer scheduler (it has no such method).
_NOT_PPACER = (405, 501)


class _Elsewhere(Exception):
    """Internal: this URL failed in a way another URL may not; carries the error to raise."""

    def __init__(self, error: SchedulerUnavailableError) -> None:
        super().__init__(str(error))
        self.error = error


def _maybe_elsewhere(
    error: SchedulerUnavailableError, cause: BaseException | None, elsewhere: bool
) -> Exception:
    """``error`` (caused by ``cause``), wrapped to be tried at the next URL when ``elsewhere``."""
    error.__cause__ = cause
    return _Elsewhere(error) if elsewhere else error


class HttpAnswer:
    """An HTTP answer: its status code, headers (lower-case names) and body."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, content: bytes, headers: dict[str, str]) -> None:
        self.status_code = status_code
        self.content = content
        self.headers = headers

    @property
    def text(self) -> str:
        """The body as text."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` if it is not)."""
        return jsonlib.loads(self.content)


# Requests sent again, once, when a kept-alive connection turns out to be closed:
# reads, and the reports and heartbeats the scheduler takes idempotently.
_RESENDABLE = frozenset(
    {"update_task_status", "update_task_statuses", "executor_heartbeat", "ship_task_logs"}
)
# uvicorn closes a connection idle for 5 s; one idle this long is not reused.
_MAX_IDLE_S = 4.0
# OpenSSL's reasons when an https:// URL reaches a server speaking plain HTTP.
_PLAIN_HTTP_REASONS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"})


class Host(Protocol):
    """Where one URL's requests go: HTTP (:class:`_Http`) or the app in this process
    (:class:`~ppacer.api.inprocess.InProcess`). Failures raise as sockets do."""

    @property
    def is_https(self) -> bool:
        """True for an https:// URL."""

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
        """One request and its answer."""

    def close(self) -> None:
        """Close the connections."""


class _Http:
    """HTTP/1.1 with keep-alive on the standard library: one connection per thread.

    Each request is one ``http.client`` exchange on the calling thread's
    connection (the executor's poll and report threads each keep their own).
    ``http.client`` costs a third of what a general HTTP client library does
    per request, and an executor makes two requests per task it runs.
    """

    def __init__(
        self,
        url: str,
        timeout_s: float,
        headers: dict[str, str],
        context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInputError(f"url: not an http:// or https:// URL: {url!r}")
        self._https = parts.scheme == "https"
        self._context = context
        self._host = parts.hostname
        self._port = parts.port
        self._base = parts.path.rstrip("/")
        self._headers = {"Accept": "application/json", **headers}
        self._timeout_s = timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()

    def _connect(self, timeout_s: float) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout_s, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout_s)
        with self._lock:
            self._open.add(conn)
        return conn

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        with self._lock:
            self._open.discard(conn)
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None

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
        target = self._base + path
        if params:
            target += "?" + urlencode(params)
        headers = self._headers
        data = None
        if body is not None:
            data = jsonlib.dumps(body, allow_nan=False).encode()
            headers = {**headers, "Content-Type": "application/json"}
        for attempt in (1, 2):
            conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
            idle_s = time.monotonic() - getattr(self._local, "used", 0.0)
            if conn is not None and idle_s > _MAX_IDLE_S:
                self._drop(conn)
                conn = None
            reused = conn is not None
            if conn is None:
                conn = self._local.conn = self._connect(timeout_s)
            elif conn.timeout != timeout_s:
                conn.timeout = timeout_s
                if conn.sock is not None:
                    conn.sock.settimeout(timeout_s)
            try:
                conn.request(method, target, body=data, headers=headers)
                response = conn.getresponse()
                content = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._drop(conn)
                if reused and attempt == 1 and (method == "GET" or resendable):
                    continue  # the server had closed the kept-alive connection
                raise
            except BaseException:
                self._drop(conn)
                raise
            self._local.used = time.monotonic()
            if response.will_close:
                self._drop(conn)
            return HttpAnswer(
                response.status, content, {k.lower(): v for k, v in response.getheaders()}
            )
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def is_https(self) -> bool:
        """True for an https:// URL."""
        return self._https

    def close(self) -> None:
        with self._lock:
            conns, self._open = self._open, set()
        for conn in conns:
            conn.close()


class Transport:
    """Sends routes of the table to the URL in use of ``urls``. Thread-safe."""

    def __init__(
        self,
        urls: tuple[str, ...],
        timeout_s: float,
        headers: dict[str, str],
        context: ssl.SSLContext | None,
        host: Host | None = None,
    ) -> None:
        self.urls = urls
        self.timeout_s = timeout_s
        # ``host``: the one URL's requests go there instead of over HTTP.
        self._hosts: list[Host] = (
            [host] if host is not None else [_Http(u, timeout_s, headers, context) for u in urls]
        )
        # The URL that answered last: calls go there first.
        self._current = 0

    @property
    def url(self) -> str:
        """The URL in use (the one that answered last)."""
        return self.urls[self._current]

    def close(self) -> None:
        """Close the connections."""
        for host in self._hosts:
            host.close()

    def call(
        self,
        name: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout_s: float | None = None,
        **path: object,
    ) -> HttpAnswer:
        """Call ``name`` on the URL in use; with several URLs, on the next while one is away.

        A call moves on to the next URL when the scheduler there cannot be
        reached or answers 503 (a standby without a leader, a database away),
        and when a read or an idempotent call got no answer; the URL that
        answers stays in use. A change whose answer was lost is not sent again.
        """
        start = self._current
        last: _Elsewhere | None = None
        for step in range(len(self._hosts)):
            index = (start + step) % len(self._hosts)
            try:
                answer = self._call_one(index, name, json, params, timeout_s, path)
            except _Elsewhere as exc:
                last = exc
                continue
            self._current = index
            return answer
        assert last is not None
        raise last.error from last.error.__cause__

    def _call_one(
        self,
        index: int,
        name: str,
        json: Any,
        params: dict[str, Any] | None,
        timeout_s: float | None,
        path: dict[str, object],
    ) -> HttpAnswer:
        route = ROUTES[name]
        host, url = self._hosts[index], self.urls[index]
        several = len(self._hosts) > 1
        resendable = route.method == "GET" or name in _RESENDABLE
        try:
            response = host.request(
                route.method,
                route.url(**path),
                body=json,
                params=params,
                timeout_s=timeout_s if timeout_s is not None else self.timeout_s,
                resendable=name in _RESENDABLE,
            )
        except ssl.SSLCertVerificationError as exc:
            raise TLSError(
                f"the certificate of {url} is not trusted ({exc.verify_message}): give the "
                "CA that signed it with --ca-file, PPACER_CA_FILE or ca_file"
            ) from None
        except ssl.SSLError as exc:
            if exc.reason in _PLAIN_HTTP_REASONS:
                raise TLSError(
                    f"{url} does not speak TLS ({exc.reason}): use http:// for a "
                    "scheduler without --tls-cert"
                ) from None
            raise _maybe_elsewhere(
                SchedulerUnavailableError(f"scheduler at {url} unreachable: {exc}"),
                exc,
                several and resendable,
            ) from exc
        except http.client.RemoteDisconnected as exc:
            # Also what a plain-HTTP request to an HTTPS server gets: say so.
            hint = "" if host.is_https else "; if it serves HTTPS, use an https:// URL"
            raise _maybe_elsewhere(
                SchedulerUnavailableError(f"scheduler at {url} unreachable: {exc}{hint}"),
                exc,
                several and resendable,
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            reason = str(exc) or type(exc).__name__
            # Refused or unresolvable: the request never reached a scheduler.
            unsent = isinstance(exc, ConnectionRefusedError | socket.gaierror)
            raise _maybe_elsewhere(
                SchedulerUnavailableError(f"scheduler at {url} unreachable: {reason}"),
                exc,
                several and (resendable or unsent),
            ) from exc
        if response.status_code < 400:
            return response
        message = _error_text(response)
        if response.status_code == 401:
            raise UnauthorizedError(message)
        if response.status_code in _NOT_PPACER:
            raise ProtocolError(
                f"{route.method} {route.path}: {url} answered {response.status_code} "
                f"({message}); is it a ppacer scheduler?"
            )
        if response.status_code >= 500:
            raise _maybe_elsewhere(
                SchedulerUnavailableError(f"scheduler answered {response.status_code}: {message}"),
                None,
                several and response.status_code == 503,
            )
        raise ERROR_BY_STATUS.get(response.status_code, PpacerError)(message)


def _error_text(response: HttpAnswer) -> str:
    try:
        data = response.json()
    except ValueError:
        # Not our error shape (a proxy's or another server's page): one short line of it.
        if "html" in response.headers.get("content-type", "").lower():
            title = re.search(rb"<title[^>]*>(.*?)</title>", response.content, re.I | re.S)
            named = f" ({' '.join(title[1].decode('utf-8', 'replace').split())})" if title else ""
            return f"HTTP {response.status_code}: an HTML page{named}"
        text = " ".join(response.text.split())
        if len(text) > 200:
            text = text[:200] + "..."
        return text or f"HTTP {response.status_code}"
    if isinstance(data, dict) and "error" in data:
        return str(data["error"])
    return response.text.strip()
