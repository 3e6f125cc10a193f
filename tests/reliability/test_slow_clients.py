"""Slow and idle clients cannot exhaust the scheduler's HTTP server.

A real scheduler on a loopback port and raw sockets: connections that send
nothing, headers a little at a time, or a body that never ends are closed after
``Config.request_timeout_s``; idle kept-alive ones after the keep-alive timeout;
past ``Config.max_long_polls`` a long poll is answered 503 at once, and an
executor that gets that answer backs off calmly and gets its work later.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path

import httpx2
import pytest

import ppacer
from ppacer.local import KEEP_ALIVE_S, LocalRunner
from ppacer.scheduler.config import Config
from tests.conftest import wait_for

pytestmark = pytest.mark.reliability


@ppacer.task
def hello(ctx: ppacer.TaskContext) -> None:
    ctx.logger.info("hello")


def _registry() -> ppacer.Registry:
    return ppacer.Registry([ppacer.Dag("hello", root=ppacer.Node(hello)).done()])


def _is_closed(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (whatever it sent before is read and dropped)."""
    try:
        while True:
            data = sock.recv(65536, socket.MSG_DONTWAIT)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_idle_and_slow_connections_are_closed_and_the_server_answers_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = Config(max_connections=64, request_timeout_s=1.0)
    runner = LocalRunner(
        _registry(),
        str(tmp_path / "scheduler.db"),
        str(tmp_path / "logs.db"),
        port=0,
        config=config,
        with_executor=False,
    ).start()
    sockets: list[socket.socket] = []
    address = (runner.host, runner.port)

    def connect(first: bytes = b"") -> socket.socket:
        sock = socket.create_connection(address, timeout=5)
        if first:
            sock.sendall(first)
        sockets.append(sock)
        return sock

    def all_closed() -> None:
        # After request_timeout_s (1 s), the kept-alive one after KEEP_ALIVE_S: the
        # deadline is generous, the test waits for every one of them.
        wait_for(
            lambda: all(_is_closed(s) for s in sockets),
            4 * (KEEP_ALIVE_S + config.request_timeout_s),
            "the server to close every idle and slow connection",
        )
        for sock in sockets:
            sock.close()
        sockets.clear()

    try:
        assert httpx2.get(f"{runner.url}/healthz").status_code == 200
        baseline = _open_fds()
        kept = connect(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # answered, then idle
        assert kept.recv(65536).startswith(b"HTTP/1.1 200")
        for _ in range(20):  # connect and say nothing
            connect()
        for _ in range(10):  # headers that never end (slowloris)
            connect(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        for _ in range(10):  # a body that never comes
            connect(
                b"POST /dag/run/trigger HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"dagId": '
            )
        # Under the connection limit, others are served meanwhile.
        assert httpx2.get(f"{runner.url}/healthz", timeout=5.0).status_code == 200
        all_closed()

        # Past the limit, a request is answered 503 at once (never left hanging), and
        # served again once the idle connections were closed.
        for _ in range(config.max_connections + 8):
            connect()
        over = httpx2.get(f"{runner.url}/healthz", timeout=5.0)
        assert over.status_code == 503
        all_closed()
        assert httpx2.get(f"{runner.url}/healthz").status_code == 200
        # Their file descriptors are given back in the server process (this one).
        wait_for(lambda: _open_fds() <= baseline + 4, 10, "the connections' descriptors back")
        # Cutting a slow client off is routine: no error, no traceback in the log.
        noisy = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert noisy == [], [r.getMessage() for r in noisy]
    finally:
        for sock in sockets:
            sock.close()
        runner.stop()


def test_long_polls_past_the_cap_get_503_at_once_and_an_executor_backs_off_calmly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = Config(max_long_polls=3, max_pop_wait_s=10.0)
    registry = _registry()
    runner = LocalRunner(
        registry,
        str(tmp_path / "scheduler.db"),
        str(tmp_path / "logs.db"),
        port=0,
        config=config,
        with_executor=False,
    ).start()
    executor: ppacer.Executor | None = None
    try:
        polls = [
            threading.Thread(
                target=httpx2.get,
                args=(f"{runner.url}/dag/task/pop?wait_s=3&executor=idle{i}",),
                kwargs={"timeout": 10.0},
            )
            for i in range(3)
        ]
        for poll in polls:
            poll.start()
        wait_for(lambda: runner.scheduler.stats().waiters == 3, 10, "3 long polls waiting")

        refused = httpx2.get(f"{runner.url}/dag/task/pop/batch?max=4&wait_s=3", timeout=1.0)
        assert refused.status_code == 503
        assert "max_long_polls is 3" in refused.json()["error"]
        # A poll that does not wait is not a long poll: answered as usual.
        assert httpx2.get(f"{runner.url}/dag/task/pop?wait_s=0").status_code == 204

        executor = ppacer.Executor(
            runner.new_client(), registry, concurrency=1, poll_wait_s=1.0, name="calm"
        ).start()
        wait_for(
            lambda: [r for r in caplog.records if "max_long_polls" in r.getMessage()],
            10,
            "the executor to be refused",
        )
        for poll in polls:
            poll.join(10)
        run_id = runner.client.trigger_dag_run("hello")["runId"]
        wait_for(lambda: runner.client.get_dag_run(run_id)["status"] == "SUCCESS", 30, "the run")
        refusals = [
            r
            for r in caplog.records
            if r.name.startswith("ppacer.executor") and "max_long_polls" in r.getMessage()
        ]
        assert len(refusals) == 1 and refusals[0].levelno == logging.WARNING, refusals
        noisy = [
            r
            for r in caplog.records
            if r.name.startswith("ppacer") and (r.levelno >= logging.ERROR or r.exc_info)
        ]
        assert noisy == [], [r.getMessage() for r in noisy]
    finally:
        if executor is not None:
            executor.stop(10)
        runner.stop()
