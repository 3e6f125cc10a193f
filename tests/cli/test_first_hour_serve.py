"""A newcomer's first hour with ``ppacer run`` / ``ppacer scheduler``, in real processes.

A busy port, a scheduler on another port found from another terminal, the
token flag, the UI's URL said once, and the favicon browsers ask for.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from ppacer.cli.common import local_scheduler_url
from tests.conftest import wait_for
from tests.procs import Proc, clean_env, ppacer_command
from tests.procs import procs as procs  # a fixture

DAGS = """
import ppacer

@ppacer.task
def hi(ctx: ppacer.TaskContext) -> None:
    ctx.logger.info("hi")

dags = ppacer.Registry([ppacer.Dag("first_hour", root=ppacer.Node(hi)).done()])
"""


def _cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ppacer_command(), *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def busy_port():
    """A port some other program listens on, for the test's length."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("command", ["run", "scheduler"])
def test_a_busy_port_says_which_flag_to_use_before_any_file_is_made(tmp_path, busy_port, command):
    (tmp_path / "dags.py").write_text(DAGS)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = _cli([command, "dags.py", "--port", str(busy_port)], tmp_path)
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{busy_port}: the port is in use")
    hint = int(line.rsplit("--port ", 1)[1])
    assert hint != busy_port  # a port that was free when the error was written
    # Nothing made: no databases, no lock files, not even the DAG file's bytecode.
    assert sorted(p.name for p in tmp_path.iterdir()) == before == ["dags.py"]


def test_commands_in_the_same_directory_find_a_run_on_another_port(tmp_path, procs):
    (tmp_path / "dags.py").write_text(DAGS)
    run = Proc(["run", "dags.py", "--port", "0"], tmp_path, clean_env())
    procs.append(run)
    url = run.url()
    # The banner says what another terminal, elsewhere, must export.
    exported = run.out.wait_for("Other terminals:")
    assert exported == (
        "Other terminals: commands run in this directory find it; "
        f"elsewhere: export PPACER_URL={url}"
    )

    # From this directory, with no URL given: found through its database's lock file.
    listed = _cli(["dags", "list", "--json"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [d["dagId"] for d in json.loads(listed.stdout)] == ["first_hour"]
    # From elsewhere, with what the banner says to export.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    variable, value = exported.rsplit("export ", 1)[1].split("=", 1)
    listed = _cli(["dags", "list", "--json"], elsewhere, **{variable: value})
    assert listed.returncode == 0, listed.stderr
    assert [d["dagId"] for d in json.loads(listed.stdout)] == ["first_hour"]

    # Once it stopped, its lock file stays but names a process that is gone: not used.
    assert run.stop(signal.SIGINT) == 0
    assert (tmp_path / "scheduler.db.lock").exists()
    assert local_scheduler_url(str(tmp_path / "scheduler.db")) is None


@pytest.mark.parametrize("command", ["run", "scheduler"])
def test_token_flag_on_run_and_scheduler(tmp_path, procs, command):
    (tmp_path / "dags.py").write_text(DAGS)
    proc = Proc([command, "dags.py", "--port", "0", "--token", "s3cret"], tmp_path, clean_env())
    procs.append(proc)
    url = proc.url()
    line = proc.out.wait_for("Other terminals:")
    assert line.endswith("PPACER_TOKEN=<the token given to this command>")
    assert "s3cret" not in "\n".join(proc.out.all() + proc.err.all())

    refused = _cli(["dags", "list", "--url", url], tmp_path)
    assert refused.returncode == 1 and "unauthorized" in refused.stderr
    allowed = _cli(["dags", "list", "--json", "--url", url], tmp_path, PPACER_TOKEN="s3cret")
    assert allowed.returncode == 0, allowed.stderr
    if command == "run":  # its own executor has the token too: a run finishes
        done = _cli(
            ["trigger", "first_hour", "--wait", "--url", url], tmp_path, PPACER_TOKEN="s3cret"
        )
        assert done.returncode == 0, done.stderr
    assert proc.stop(signal.SIGTERM) == 0


def test_favicon_answers(tmp_path, procs):
    (tmp_path / "dags.py").write_text(DAGS)
    run = Proc(["scheduler", "dags.py", "--port", "0", "--token", "t"], tmp_path, clean_env())
    procs.append(run)
    # Browsers ask for it without the token; it leads to the UI's icon.
    with urllib.request.urlopen(f"{run.url()}/favicon.ico", timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["content-type"].startswith("image/")
        assert answer.read().lstrip().startswith(b"<svg")


def test_the_ui_url_is_printed_once(tmp_path, procs):
    (tmp_path / "dags.py").write_text(DAGS)
    run = Proc(["run", "dags.py", "--port", "0"], tmp_path, clean_env())
    procs.append(run)
    url = run.url()
    wait_for(lambda: "registered" in "\n".join(run.err.all()), what="the executor registered")
    assert run.stop(signal.SIGINT) == 0
    printed = "\n".join(run.out.all() + run.err.all())
    assert printed.count(f"{url}/ui") == 1
