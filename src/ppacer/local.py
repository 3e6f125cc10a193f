"""Scheduler and executor in one process: the seed's ``DefaultStarted``, and ``ppacer.run``.

``run(registry)`` is the hello-world entry point: a scheduler on SQLite files
and a port, an executor in a background thread, and a clean stop on
SIGINT/SIGTERM (the executor finishes or hands back its tasks first, so the
databases stay consistent).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import resource
import signal
import socket
import ssl
import threading
import time
from types import FrameType
from typing import Any

import uvicorn

from ppacer.api.client import Client
from ppacer.api.inprocess import InProcess
from ppacer.app import Scheduler
from ppacer.dag.dag import Registry
from ppacer.errors import InvalidInputError
from ppacer.executor.executor import Executor
from ppacer.logconfig import configure_logging
from ppacer.notify import Notifier
from ppacer.scheduler.config import DEFAULT_CONFIG, Config
from ppacer.scheduler.frozen_heap import frozen_heap
from ppacer.timeutils import Clock

__all__ = [
    "KEEP_ALIVE_S",
    "LocalRunner",
    "QuietServer",
    "check_tls_files",
    "configure_logging",
    "connection_limits",
    "default_started",
    "pinned_context",
    "run",
]

log = logging.getLogger("ppacer")


class QuietServer(uvicorn.Server):
    """uvicorn's server, waking once a second rather than ten times while nothing happens.

    uvicorn's own loop sleeps 0.1 s between looks at ``should_exit`` (and refreshes
    its ``Date`` header every tenth look): on an idle scheduler those wake-ups were
    the event loop's steadiest work. This one refreshes the header each second, as
    before, and :meth:`request_exit` (from any thread, or a signal) stops it at once.
    """

    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter += 10  # on_tick refreshes the Date header when counter % 10 == 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            should_exit = await self.on_tick(counter)

    def request_exit(self) -> None:
        """Stop serving now (thread-safe)."""
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # its loop has closed
                loop.call_soon_threadsafe(wake.set)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self.request_exit()


class LocalRunner:
    """A scheduler serving HTTP on ``host:port`` plus an executor, in one process.

    With ``tls_cert`` and ``tls_key`` (PEM files: the certificate, with its
    chain, and its private key) it serves HTTPS; its own clients trust exactly
    that certificate (:meth:`new_client`), so a certificate made for the
    host's public name works for them on the loopback address too.
    """

    def __init__(
        self,
        registry: Registry,
        db: str = "scheduler.db",
        logs_db: str = "logs.db",
        *,
        port: int = 9321,
        host: str = "127.0.0.1",
        config: Config = DEFAULT_CONFIG,
        concurrency: int = 8,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
        stop_timeout_s: float = 30.0,
        with_executor: bool = True,
        tls_cert: str | None = None,
        tls_key: str | None = None,
    ) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("give LocalRunner both tls_cert and tls_key, or neither")
        if tls_cert is not None and tls_key is not None:
            check_tls_files(tls_cert, tls_key)
        self.registry = registry
        self.tls_cert = tls_cert
        self.stop_timeout_s = stop_timeout_s
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host = host
        self.port = self.sock.getsockname()[1]
        scheme = "https" if tls_cert else "http"
        self.url = f"{scheme}://{_url_host(host)}:{self.port}"
        if with_executor and config.recovery_grace_s is None:
            # Attempts left RUNNING by this process's own executor, which died with it.
            config = dataclasses.replace(config, recovery_grace_s=0.0)
        if config.advertise_url is None:
            # Where other schedulers of the database (standbys) forward calls to.
            public = socket.getfqdn() if host in ("0.0.0.0", "::", "") else host
            config = dataclasses.replace(
                config, advertise_url=f"{scheme}://{_url_host(public)}:{self.port}"
            )
        try:
            self.scheduler = Scheduler(db, config, logs_db=logs_db, clock=clock, notifier=notifier)
            self.app = self.scheduler.start(registry)
        except BaseException:
            self.sock.close()
            raise
        self._token = config.api_token
        self.server = QuietServer(
            uvicorn.Config(
                self.app,
                log_level="warning",
                lifespan="on",
                access_log=False,
                ws="none",  # no WebSocket route: its protocol modules are not loaded
                timeout_graceful_shutdown=5,
                ssl_certfile=tls_cert,
                ssl_keyfile=tls_key,
                # Slow and idle clients: see connection_limits().
                **connection_limits(config),
            )
        )
        #: A client of this scheduler, for triggering runs and reading state.
        self.client = self.new_client()
        self.executor: Executor | None = None
        if with_executor:
            # It calls the API as a remote executor does (its task logs too, batched by
            # the scheduler), through the app itself rather than a loopback socket:
            # the same handlers, without HTTP on either side (BENCHMARKS.md).
            channel = InProcess(self.app, lambda: self.scheduler.loop)
            self.executor = Executor(
                Client(self.url, token=self._token, in_process=channel),
                registry,
                concurrency=concurrency,
                poll_wait_s=5.0,
            )
        self._server_thread: threading.Thread | None = None
        self._stopping = threading.Lock()

    def new_client(self, timeout_s: float = 15.0) -> Client:
        """A client of this scheduler: its token, and over HTTPS trusting its own certificate."""
        context = None
        if self.tls_cert is not None:
            context = pinned_context(self.tls_cert)
        return Client(self.url, timeout_s=timeout_s, token=self._token, ssl_context=context)

    def start(self) -> LocalRunner:
        """Serve in a background thread and start the executor; return once serving."""
        self._server_thread = threading.Thread(
            target=self._serve, name="ppacer-scheduler", daemon=True
        )
        self._server_thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._server_thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the scheduler's HTTP server did not start")
            time.sleep(0.005)
        if self.executor is not None:
            self.executor.start()
        return self

    def _serve(self) -> None:
        # In a non-main thread uvicorn installs no signal handlers: serve_forever owns them.
        self.server.run(sockets=[self.sock])

    def stop(self) -> None:
        """Stop the executor (waiting for its tasks), then the scheduler; safe to call twice."""
        if not self._stopping.acquire(blocking=False):
            return
        self.scheduler.stop_soon()
        if self.executor is not None:
            self.executor.stop(self.stop_timeout_s)
        # Our own kept-alive connections first: over TLS, one the server must cut while it
        # stops is left half-closed when its event loop ends.
        self.client.close()
        self.server.request_exit()
        if self._server_thread is not None:
            self._server_thread.join(30)
        self.sock.close()
        self.scheduler.close()

    def serve_forever(self, *, announce: bool = True) -> None:
        """Start, log the URL and block until SIGINT/SIGTERM, then stop cleanly.

        ``announce=False``: the URLs are not logged, as a caller that printed
        them already (``ppacer run``'s banner) would have them twice.
        """
        stop = threading.Event()
        signals = 0

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            nonlocal signals
            signals += 1
            if signals > 1:
                log.warning("second signal: exiting now")
                os._exit(130)
            log.info("received %s; stopping", signal.Signals(signum).name)
            stop.set()

        previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
        try:
            self.start()
            if announce:
                log.info("ppacer scheduler listening on %s", self.url)
                log.info("web UI: open %s/ui in a browser", self.url)
            # This process serves until stopped: what it holds now (its DAGs, parts and
            # modules) stays, and is left out of the collector's full passes.
            with frozen_heap():
                while not stop.wait(0.5):
                    if self._server_thread is not None and not self._server_thread.is_alive():
                        log.error("scheduler HTTP server stopped unexpectedly")
                        break
        finally:
            self.stop()
            for number, handler in previous.items():
                signal.signal(number, handler)
        log.info("ppacer stopped")


#: Seconds a kept-alive connection may stay idle between requests before the server
#: closes it (uvicorn's default; the client, ppacer.api.transport, reuses one idle for
#: at most 4 s, so it never sends on a connection the server is closing).
KEEP_ALIVE_S = 5
# Open files kept for the process itself (databases, logs, pipes) below its limit.
_RESERVED_FILES = 64


def connection_limits(config: Config) -> dict[str, Any]:
    """uvicorn settings that keep slow or idle clients from exhausting the server.

    - ``limit_concurrency``: at most ``config.max_connections`` open connections
      (and requests in progress), kept below the process's open-file limit;
      a request past it is answered 503 at once.
    - ``timeout_keep_alive``: an idle kept-alive connection is closed after
      :data:`KEEP_ALIVE_S`.
    - ``http``: the HTTP protocol with a request deadline: a client has
      ``config.request_timeout_s`` to send a whole request (headers and body) from
      when it connected or began the request, else its connection is closed.
      uvicorn itself never closes a connection that sends nothing, or sends its
      headers a byte at a time (it arms the keep-alive timer only after an answer).
    """
    limit = config.max_connections
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        limit = max(16, min(limit, soft - _RESERVED_FILES))
    settings: dict[str, Any] = {"limit_concurrency": limit, "timeout_keep_alive": KEEP_ALIVE_S}
    protocol = _deadline_protocol(config.request_timeout_s)
    if protocol is not None:
        settings["http"] = protocol
    return settings


def _deadline_protocol(timeout_s: float) -> type[asyncio.Protocol] | None:
    """uvicorn's httptools protocol, closing connections whose request is not in after
    ``timeout_s`` (None: httptools is not installed, uvicorn picks its own)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        log.warning("httptools is not installed: slow clients are not timed out")
        return None

    class RequestDeadlineProtocol(HttpToolsProtocol):
        """Closes the connection when a request is not complete ``timeout_s`` after it
        began (or after the connection was made, for the first one)."""

        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._deadline is None:
                self._arm()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._deadline = self.loop.call_later(timeout_s, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()

    return RequestDeadlineProtocol


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def check_tls_files(cert_file: str, key_file: str) -> None:
    """Raise :class:`InvalidInputError` unless the files are a PEM certificate and its key."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidInputError(
            f"tls_cert/tls_key: {cert_file} and {key_file} are not a PEM certificate and its "
            f"private key: {exc}"
        ) from exc


def pinned_context(cert_file: str) -> ssl.SSLContext:
    """A TLS context trusting exactly the certificate(s) in ``cert_file``, whatever their name.

    For a process's clients of its own server on a loopback address: the
    certificate is the one it serves (no CA needed, a leaf is accepted as the
    anchor), and its name is the host's public one, not 127.0.0.1.
    """
    context = ssl.create_default_context(cafile=cert_file)
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def default_started(
    registry: Registry,
    db: str = "scheduler.db",
    logs_db: str = "logs.db",
    port: int = 9321,
    **kwargs: Any,
) -> LocalRunner:
    """Start a scheduler and an executor in this process (background threads); return the runner."""
    return LocalRunner(registry, db, logs_db, port=port, **kwargs).start()


def run(
    registry: Registry,
    db: str = "scheduler.db",
    logs_db: str = "logs.db",
    port: int = 9321,
    **kwargs: Any,
) -> None:
    """Run scheduler and executor in this process until Ctrl-C (SIGINT) or SIGTERM."""
    configure_logging()
    LocalRunner(registry, db, logs_db, port=port, **kwargs).serve_forever()
