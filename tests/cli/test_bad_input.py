"""Bad input never ends a ``ppacer`` command in a traceback: usage errors exit 2, others 1."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ppacer.errors import ProtocolError

_NON_FINITE = ['{"a": NaN}', '{"a": 1e400}', '{"a": Infinity}', '{"a": [1, {"b": -Infinity}]}']


def _ppacer() -> list[str]:
    """The console script next to this interpreter (as installed), else ``python -m ppacer``."""
    script = Path(sys.executable).with_name("ppacer")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ppacer"]


@pytest.mark.parametrize("params", _NON_FINITE)
def test_non_finite_numbers_in_params_are_usage_errors(ppacer_cli, params):
    # Refused before any scheduler is asked: none listens at this URL.
    result = ppacer_cli("trigger", "hello", "--params", params, "--url", "http://127.0.0.1:9")
    assert result.exit_code == 2, result.output
    assert "Invalid value for --params: non-finite number" in result.stderr
    assert "(JSON has no NaN or Infinity)" in result.stderr


def test_params_that_no_json_encoder_can_send_are_usage_errors(ppacer_cli):
    url = ("--url", "http://127.0.0.1:9")
    surrogate = ppacer_cli("trigger", "hello", "--params", '{"a": "\\ud800"}', *url)
    assert surrogate.exit_code == 2 and "--params: not valid Unicode" in surrogate.stderr
    deep = ppacer_cli("trigger", "hello", "--params", "[" * 100_000, *url)
    assert deep.exit_code == 2 and "--params: not JSON: nested too deeply" in deep.stderr
    broken = ppacer_cli("trigger", "hello", "--params", "{", *url)
    assert broken.exit_code == 2 and "--params: not JSON" in broken.stderr


class _NotAScheduler(BaseHTTPRequestHandler):
    """Answers every GET with 200 and an empty JSON object: not what ppacer's API answers."""

    def do_GET(self) -> None:
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def odd_server() -> Iterator[str]:
    """The URL of an HTTP server whose answers the CLI does not expect."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotAScheduler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_unexpected_error_is_one_line_and_exit_1(ppacer_cli, odd_server):
    result = ppacer_cli("dags", "list", "--url", odd_server)
    assert result.exit_code == 1
    assert result.stderr == (
        "error: GET /dag/list: the answer is not a ppacer scheduler's "
        f"(total: Field required and 3 more); is {odd_server} a ppacer scheduler?\n"
    )


def test_debug_flag_or_env_lets_the_traceback_through(ppacer_cli, odd_server):
    with pytest.raises(ProtocolError):
        ppacer_cli("--debug", "dags", "list", "--url", odd_server)
    with pytest.raises(ProtocolError):
        ppacer_cli("dags", "list", "--url", odd_server, env={"PPACER_DEBUG": "1"})


def test_real_entry_point_prints_no_traceback(tmp_path, odd_server):
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_ppacer(), *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )

    nan = cli("trigger", "hello", "--params", '{"a": NaN}')
    assert nan.returncode == 2 and "Traceback" not in nan.stderr
    assert "--params: non-finite number NaN is not allowed" in nan.stderr
    odd = cli("dags", "list", "--url", odd_server, "--json")
    assert odd.returncode == 1 and odd.stdout == ""
    assert odd.stderr.startswith("error: GET /dag/list: the answer is not a ppacer")
    assert odd.stderr.count("\n") == 1 and "Traceback" not in odd.stderr
    debug = cli("--debug", "dags", "list", "--url", odd_server)
    assert debug.returncode == 1 and debug.stderr.startswith("Traceback")


def test_validate_names_the_file_and_line_of_a_syntax_error(ppacer_cli, tmp_path):
    (tmp_path / "syntax.py").write_text("import ppacer\ndef f(:\n    pass\n")
    result = ppacer_cli("validate", "syntax.py")
    assert result.exit_code == 1
    first = result.output.splitlines()[0]
    assert re.fullmatch(r"error: syntax\.py: SyntaxError: .+ \(syntax\.py, line 2\)", first), first
    assert "frozen" not in result.output and result.output.count("line") == 1
    (tmp_path / "indent.py").write_text("if True:\nx = 1\n")
    indent = json.loads(ppacer_cli("validate", "indent.py", "--json").output)
    assert indent["errors"][0].startswith("indent.py: IndentationError: ")
    assert indent["errors"][0].endswith("(indent.py, line 2)")
    run = ppacer_cli("run", "syntax.py")  # the same message, before anything starts
    assert run.exit_code == 1 and run.stderr == f"{first}\n"


def test_validate_points_at_the_users_line_not_ppacers(ppacer_cli, tmp_path):
    (tmp_path / "naive.py").write_text(
        "from datetime import datetime, timedelta\nimport ppacer\n"
        "schedule = ppacer.FixedSchedule(datetime(2024, 1, 1), timedelta(days=1))\n"
    )
    result = ppacer_cli("validate", "naive.py")
    assert result.exit_code == 1
    assert result.output.splitlines()[0].startswith("error: naive.py: ValueError: FixedSchedule")
    assert result.output.splitlines()[0].endswith("(naive.py, line 3)")
