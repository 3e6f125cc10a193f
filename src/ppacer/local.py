"""Scheduler and executor in one process: the seed's ``DefaultStarted``, and ``ppacer.run``.

``run(registry)`` is the hello-world entry point: a scheduler on SQLite files
and a port, an executor in a background thread, and a clean stop on
SIGINT/SIGTERM (the executor finishes or hands back its tasks first, so the
databases stay consistent).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from types import FrameType
from typing import Any

import uvicorn

from ppacer.api.client import Client
from ppacer.app import Scheduler
from ppacer.dag.dag import Registry
from ppacer.executor.executor import Executor
from ppacer.logconfig import configure_logging
from ppacer.notify import Notifier
from ppacer.scheduler.config import DEFAULT_CONFIG, Config
from ppacer.timeutils import Clock

__all__ = ["LocalRunner", "configure_logging", "default_started", "run"]

log = logging.getLogger("ppacer")


class LocalRunner:
    """A scheduler serving HTTP on ``host:port`` plus an executor, in one process."""

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
    ) -> None:
        self.registry = registry
        self.stop_timeout_s = stop_timeout_s
        self.scheduler = Scheduler(db, config, logs_db=logs_db, clock=clock, notifier=notifier)
        self.app = self.scheduler.start(registry)
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                log_level="warning",
                lifespan="on",
                access_log=False,
                timeout_graceful_shutdown=5,
            )
        )
        #: A client of this scheduler, for triggering runs and reading state.
        self.client = Client(self.url, token=config.api_token)
        self.executor: Executor | None = None
        if with_executor:
            self.executor = Executor(
                Client(self.url, token=config.api_token),
                registry,
                logs_db=self.scheduler.logs_engine,
                concurrency=concurrency,
                poll_wait_s=5.0,
            )
        self._server_thread: threading.Thread | None = None
        self._stopping = threading.Lock()

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
        self.server.should_exit = True
        if self._server_thread is not None:
            self._server_thread.join(30)
        self.sock.close()
        self.client.close()
        self.scheduler.close()

    def serve_forever(self) -> None:
        """Start, print the URL and block until SIGINT/SIGTERM, then stop cleanly."""
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
            log.info("ppacer scheduler listening on %s", self.url)
            log.info("web UI: open %s/ui in a browser", self.url)
            while not stop.wait(0.5):
                if self._server_thread is not None and not self._server_thread.is_alive():
                    log.error("scheduler HTTP server stopped unexpectedly")
                    break
        finally:
            self.stop()
            for number, handler in previous.items():
                signal.signal(number, handler)
        log.info("ppacer stopped")


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
