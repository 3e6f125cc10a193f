"""``ppacer executor`` against what is not the scheduler it needs: one line, exit code 2.

A wrong or missing token, a scheduler of an older protocol, a URL that is not a
ppacer scheduler: the executor says so in one line naming the URL and what to
do, and exits with code 2. A scheduler that is merely away is waited for
calmly: one line for the outage, no traceback, and work once it is back.
Each through the command line in a subprocess, against a real scheduler on a
free loopback port or a plain HTTP server.
"""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import ppacer
from ppacer.scheduler.config import Config
from tests.conftest import wait_for, wait_run_finished
from tests.e2e.remote_dags import dags
from tests.e2e.test_executors import free_port

ROOT = Path(__file__).resolve().parents[2]
PPACER_EXECUTOR = [sys.executable, "-m", "ppacer", "executor", "tests.e2e.remote_dags"]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PPACER_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def executor_cli(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    """``ppacer executor tests.e2e.remote_dags ARGS`` (or ``code`` running the CLI) to its end."""
    argv = ["executor", "tests.e2e.remote_dags", "--concurrency", "1", *args]
    command = [sys.executable, "-m", "ppacer", *argv]
    if code is not None:
        command = [sys.executable, "-c", code, *argv]
    return subprocess.run(
        command, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60
    )


def the_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Exit code 2 and exactly one ERROR line on stderr, without a traceback: that line."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture
def guarded(db_paths) -> Iterator[ppacer.LocalRunner]:
    """A real scheduler that wants the token s3cret."""
    db, logs = (str(p) for p in db_paths)
    runner = ppacer.LocalRunner(
        dags, db, logs, port=0, with_executor=False, config=Config(api_token="s3cret")
    ).start()
    yield runner
    runner.stop()


@pytest.mark.parametrize("token", [None, "wrong"], ids=["missing", "wrong"])
def test_a_bad_token_is_one_line_and_exit_code_2(guarded, token):
    args = ["--url", guarded.url] + (["--token", token] if token else [])
    line = the_error_line(executor_cli(*args))
    assert guarded.url in line
    assert "--token" in line and "PPACER_TOKEN" in line


def test_the_right_token_serves(guarded, db_paths):
    proc = subprocess.Popen(
        [*PPACER_EXECUTOR, "--url", guarded.url, "--token", "s3cret"],
        cwd=ROOT,
        env=clean_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        guarded.client.trigger_dag_run("hello")
        (run,) = wait_run_finished(db_paths[0], "hello")
        assert run["Status"] == "SUCCESS"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "registered with the scheduler" in err


def test_a_scheduler_of_an_older_protocol_is_one_line_and_exit_code_2(start_local):
    runner = start_local(dags, with_executor=False)
    # This executor speaks a protocol one newer than the scheduler's.
    code = (
        "import sys, ppacer.api.client as c; c.PROTOCOL_VERSION += 1; "
        "from ppacer.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    line = the_error_line(executor_cli("--url", runner.url, code=code))
    assert runner.url in line
    assert "protocol" in line and "at least as new as this executor" in line


class _Page(http.server.BaseHTTPRequestHandler):
    """A web server that is not a ppacer scheduler: an HTML page for every GET and POST."""

    status = 200

    def _answer(self) -> None:
        body = b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *_args: object) -> None:
        pass


class _Missing(_Page):
    status = 404


class _GetOnly(http.server.BaseHTTPRequestHandler):
    """A server without POST (501 from the standard library)."""

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(params=[_Page, _Missing, _GetOnly], ids=["html-200", "html-404", "no-post-501"])
def not_ppacer(request) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_url_that_is_not_a_ppacer_scheduler_is_one_line_and_exit_code_2(not_ppacer):
    line = the_error_line(executor_cli("--url", not_ppacer))
    assert not_ppacer in line
    assert "--url" in line


def test_a_scheduler_that_is_away_is_waited_for_with_one_line_and_no_traceback(db_paths):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [*PPACER_EXECUTOR, "--url", url],
        cwd=ROOT,
        env=clean_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    runner = None
    try:
        wait_for(lambda: any("unreachable" in line for line in lines), what="the outage line")
        db, logs = (str(p) for p in db_paths)
        runner = ppacer.LocalRunner(dags, db, logs, port=port, with_executor=False).start()
        runner.client.trigger_dag_run("hello")
        (run,) = wait_run_finished(db_paths[0], "hello")
        assert run["Status"] == "SUCCESS"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        reader.join(10)
        proc.stderr.close()
        if runner is not None:
            runner.stop()
    text = "".join(lines)
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    assert sum("unreachable" in line for line in lines) == 1, text
    assert "registered with the scheduler" in text
