"""The README's Python, run as a newcomer copies it: separate processes, and ``python dags.py``.

``examples/separate/`` holds the scheduler and executor of "Scheduler and
executors in separate processes" as files that run as they are; the README
shows them verbatim.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conftest import wait_for
from tests.procs import clean_env, ppacer_command

ROOT = Path(__file__).resolve().parents[2]
SEPARATE = ROOT / "examples" / "separate"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        # An executor's stop may take its long poll (10 s), a report's timeout (15 s) and
        # the shipping of its last log lines: wait past the sum, then kill (and fail).
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


def test_the_separate_process_example_runs_as_written(tmp_path):
    work = tmp_path / "separate"
    shutil.copytree(SEPARATE, work)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    popen = {"cwd": work, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    scheduler = subprocess.Popen(
        [sys.executable, "scheduler.py"], env=clean_env(PPACER_PORT=str(port)), **popen
    )
    executor = subprocess.Popen(
        [sys.executable, "executor.py"],
        env=clean_env(PPACER_URL=url),
        # Ctrl-C as in a terminal: a run started in the background (a CI job) would
        # otherwise hand the example an ignored SIGINT, and it would never stop.
        preexec_fn=_default_sigint,
        **popen,
    )
    try:
        wait_for(lambda: _answers(f"{url}/healthz"), 60, "the scheduler")
        done = subprocess.run(
            [*ppacer_command(), "trigger", "hello", "--params", '{"name": "you"}', "--wait"],
            cwd=tmp_path,
            env=clean_env(PPACER_URL=url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        # hello runs every minute too: the triggered run is the one the first line names.
        first, *_, last = done.stdout.splitlines()
        run_id = first.split()[1]
        assert first.startswith(f"run {run_id} of hello at ") and last == f"run {run_id} SUCCESS"
        logs = subprocess.run(
            [*ppacer_command(), "logs", "1", "greet", "--url", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert logs.stdout.rstrip().endswith("hello, you!")
    finally:
        executor_code, executor_err = _stop(executor)
        scheduler_code, scheduler_err = _stop(scheduler)
    assert executor_code == 0, executor_err
    assert scheduler_code == 0, scheduler_err
    assert "Traceback" not in executor_err + scheduler_err
    # Logging is set up: both say what they do.
    assert "registered with the scheduler" in executor_err
    assert "DAG run finished dagId=hello" in scheduler_err
    assert (work / "scheduler.db").exists() and (work / "logs.db").exists()


def _readme_code(section: str) -> list[str]:
    """The Python blocks of the README's section titled ``section``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    body = readme.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.DOTALL)


def test_the_readme_shows_the_separate_process_example_as_it_runs():
    blocks = "\n".join(_readme_code("Scheduler and executors in separate processes"))
    for name in ("scheduler.py", "executor.py"):
        code = (SEPARATE / name).read_text(encoding="utf-8")
        body = code.split('"""\n', 2)[-1].strip()  # without its docstring
        assert body in blocks, name


def test_the_readmes_dags_py_honours_ppacer_port(tmp_path):
    (code,) = _readme_code("A DAG in code")
    assert "PPACER_PORT" in code  # else it would listen on 9321, maybe a developer's
    (tmp_path / "dags.py").write_text(code)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "dags.py"],
        cwd=tmp_path,
        env=clean_env(PPACER_PORT=str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 60, "python dags.py")
        dags = json.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{port}/dag/list", timeout=5).read()
        )
        assert [d["dagId"] for d in dags["items"]] == ["example"]
    finally:
        code_, err = _stop(proc)
    assert code_ == 0, err


def test_the_readmes_test_command_says_to_stop_a_running_ppacer_first():
    # `pip install -e ".[dev]"` replaces the copy `pip install .` put in site-packages:
    # a `ppacer run` started from it (step 1) would lose its templates and lazy imports.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = re.findall(r"```bash\n(.*?)```", readme, flags=re.DOTALL)[0]
    step1, step2 = first.split("# 2.", 1)
    assert "pip install . && ppacer run" in step1
    assert 'pip install -e ".[dev]" && python -m pytest' in step2
    assert "Stop `ppacer run` first (Ctrl-C)" in step2
