"""The installed ``ppacer`` program in real processes: run, scheduler + executor, logs --follow.

Each test starts the CLI as users do (the console script, or ``python -m
ppacer``) on a free port, reads the URL it prints and drives it with more
``ppacer`` processes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import wait_for
from tests.procs import Proc, clean_env, ppacer_command
from tests.procs import procs as procs  # a fixture

DAGS = '''
import time
from pathlib import Path
import ppacer

@ppacer.task
def say_hello(ctx: ppacer.TaskContext) -> None:
    ctx.logger.info("hello, %s!", ctx.params.get("name", "world"))

@ppacer.task
def gated(ctx: ppacer.TaskContext) -> None:
    """Waits for the file named by the `gate` parameter (the test creates it)."""
    ctx.logger.info("waiting for the gate")
    gate = Path(ctx.params["gate"])
    deadline = time.monotonic() + 60
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    ctx.logger.info("through the gate")

hello = ppacer.Dag("hello", root=ppacer.Node(say_hello))
hello.root.next(ppacer.Node(gated))
dags = ppacer.Registry([hello.done()])
'''


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ppacer_command(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_run_trigger_follow_logs_and_stop(tmp_path, procs):
    (tmp_path / "dags.py").write_text(DAGS)
    run = Proc(["run", "dags.py", "--port", "0"], tmp_path, clean_env(PPACER_LOG_FORMAT="json"))
    procs.append(run)
    url = run.url()
    assert url.startswith("http://127.0.0.1:")
    env = clean_env(PPACER_URL=url)
    gate = tmp_path / "gate"
    params = json.dumps({"name": "newcomer", "gate": str(gate)})
    triggered = _cli(["trigger", "hello", "--params", params, "--json"], tmp_path, env)
    assert triggered.returncode == 0, triggered.stderr
    run_id = json.loads(triggered.stdout)["runId"]

    # --follow prints records as they come and returns when the task has finished.
    follow = Proc(["logs", str(run_id), "gated", "--follow"], tmp_path, env)
    procs.append(follow)
    follow.out.wait_for("", 30)
    wait_for(lambda: any("waiting for the gate" in line for line in follow.out.all()))
    assert follow.popen.poll() is None
    gate.touch()
    assert follow.popen.wait(30) == 0
    printed = follow.out.all()
    assert [line.split()[-1] for line in printed[-2:]] == ["gate", "gate"]
    assert "through the gate" in printed[-1]

    shown = _cli(["runs", "show", str(run_id), "--json"], tmp_path, env)
    run_json = json.loads(shown.stdout)
    assert run_json["status"] == "SUCCESS" and run_json["params"]["name"] == "newcomer"
    logs = _cli(["logs", str(run_id), "say_hello"], tmp_path, env)
    assert logs.stdout.rstrip().endswith("INFO    hello, newcomer!")

    assert run.stop(signal.SIGINT) == 0
    # Log lines were JSON, with the task's identity on its records.
    records = [json.loads(line) for line in run.err.all() if line.startswith("{")]
    assert records and len(records) == len([line for line in run.err.all() if line.strip()])
    task_lines = [r for r in records if r.get("task_id") == "say_hello"]
    assert task_lines and task_lines[0]["dag_id"] == "hello"
    assert task_lines[0]["run_id"] == run_id
    assert "hello, newcomer!" in [r["message"] for r in task_lines]
    # The executor's own lines about an attempt carry its identity too.
    started = [r for r in task_lines if r["message"].startswith("Start executing task")]
    assert started and started[0]["logger"] == "ppacer.executor"
    assert (started[0]["dag_id"], started[0]["run_id"], started[0]["retry"]) == ("hello", run_id, 0)


def test_scheduler_and_executor_processes_with_a_token(tmp_path, procs):
    (tmp_path / "dags.py").write_text(DAGS)
    (tmp_path / "ppacer.toml").write_text('token = "t0ken"\n[executor]\nconcurrency = 2\n')
    scheduler = Proc(["scheduler", "dags.py", "--port", "0"], tmp_path, clean_env())
    procs.append(scheduler)
    url = scheduler.url()
    worker = Proc(
        ["executor", "dags.py", "--url", url, "--name", "worker-1"],
        tmp_path,
        clean_env(PPACER_EXECUTOR_POLL_WAIT_S="0.5"),  # a quick stop: the long poll is awaited
    )
    procs.append(worker)
    worker.out.wait_for("ppacer executor worker-1")
    env = clean_env(PPACER_URL=url)
    gate = tmp_path / "gate"
    gate.touch()
    params = json.dumps({"gate": str(gate)})
    done = _cli(["trigger", "hello", "--params", params, "--wait"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "run 1 SUCCESS"
    listed = json.loads(_cli(["executors", "--json"], tmp_path, env).stdout)
    assert [(e["name"], e["capacity"]) for e in listed] == [("worker-1", 2)]
    no_token = _cli(["dags", "list"], tmp_path / "..", env)
    assert no_token.returncode == 1 and "unauthorized" in no_token.stderr
    assert worker.stop(signal.SIGTERM) == 0
    assert scheduler.stop(signal.SIGTERM) == 0


def test_python_dash_m_and_bad_target(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ppacer", "--version"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert result.returncode == 0 and "version" in result.stdout
    missing = _cli(["run", "nope.py"], tmp_path, clean_env())
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: nope.py: no such file"
