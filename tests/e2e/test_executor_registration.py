"""Executors register: queues, labels and code versions told to the scheduler, lacks said once.

Against a real scheduler: the registration and its one log line, what the
executor list shows. Against a stand-in of an older scheduler (no
registration endpoint, pops of any task): a task the executor lacks is not
failed when a lease will hand it back, and is failed (as the original did)
when nothing would.
"""

from __future__ import annotations

import http.server
import json
import logging
import signal
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import ppacer
from ppacer.executor.executor import Executor
from tests.cli.test_executor_failures import PPACER_EXECUTOR, ROOT, clean_env
from tests.conftest import wait_for
from tests.e2e.remote_dags import Hello, dags
from tests.e2e.test_runs import manual_dag


def test_the_executor_registers_its_queues_labels_and_code_and_says_what_it_lacks(
    start_local, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="ppacer.executor")
    runner = start_local(dags, with_executor=False)
    # This executor has other code for hello/hi (an explicit version) and lacks two DAGs.
    mine = ppacer.Registry(
        [ppacer.Dag(dag_id).add_root(dags[dag_id].root).done() for dag_id in ("fanout", "too_slow")]
        + [
            ppacer.Dag("hello")
            .add_root(ppacer.Node(Hello("hi"), ppacer.TaskConfig(version="2")))
            .done()
        ]
    )
    executor = Executor(
        runner.new_client(),
        mine,
        name="gpu-box-1",
        queues=["gpu", "default"],
        labels={"zone": "eu", "gpu": "a100"},
        poll_wait_s=1.0,
    ).start()
    try:
        lines = wait_for(
            lambda: [
                r.getMessage()
                for r in caplog.records
                if r.name == "ppacer.executor" and "registered" in r.getMessage()
            ],
            what="the registration line",
        )
        (listed,) = wait_for(
            lambda: [e for e in runner.client.list_executors()["items"] if e["registered"]],
            what="the executor in the list",
        )
    finally:
        executor.stop(10)
    (line,) = lines
    assert line.startswith(f"executor gpu-box-1 registered with the scheduler at {runner.url}")
    assert "queues gpu,default" in line
    assert "it lacks 2 task(s): stoppable/sleepy, steady/steady" in line
    assert "other code here for 1 task(s): hello/hi (not run here)" in line
    assert listed["name"] == "gpu-box-1"
    assert sorted(listed["queues"]) == ["default", "gpu"]
    assert listed["labels"] == {"zone": "eu", "gpu": "a100"}


class OldScheduler(http.server.ThreadingHTTPServer):
    """Speaks the original protocol (no registration, no batch pops): hands out ``queue``."""

    def __init__(self, queue: list[dict[str, Any]]) -> None:
        super().__init__(("127.0.0.1", 0), _OldHandler)
        self.queue = queue
        self.reports: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _OldHandler(http.server.BaseHTTPRequestHandler):
    server: OldScheduler

    def _json(self, status: int, body: object = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/state":
            self._json(200, {"state": "RUNNING"})
        elif self.path.startswith("/dag/task/pop?") or self.path == "/dag/task/pop":
            with self.server.lock:
                task = self.server.queue.pop(0) if self.server.queue else None
            self._json(200, task) if task else self._json(204)
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"null")
        if self.path == "/dag/task/update":
            with self.server.lock:
                self.server.reports.append(body)
            self._json(200)
        else:
            self._json(404, {"error": "not found"})

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def old_scheduler() -> Iterator[OldScheduler]:
    server = OldScheduler([])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _attempt(dag_id: str, task_id: str, **extra: object) -> dict[str, object]:
    return {
        "dagId": dag_id,
        "execTs": "2024-03-11T12:00:00.000000UTC+00:00",
        "taskId": task_id,
        "retry": 0,
        **extra,
    }


@pytest.mark.parametrize("leased", [True, False], ids=["with-a-lease", "without-a-lease"])
def test_a_task_the_executor_lacks_is_left_to_its_lease_or_failed_without_one(
    old_scheduler, leased, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="ppacer.executor")
    lease = {"leaseToken": "t-1", "leaseTimeoutS": 30.0} if leased else {}
    old_scheduler.queue += [_attempt("elsewhere", "x", **lease), _attempt("hello", "hi")]
    mine = ppacer.Registry([manual_dag("hello", ppacer.Node(Hello("hi")))])
    # One worker: the first attempt is handled before the second one starts.
    executor = Executor(old_scheduler.url, mine, concurrency=1, poll_wait_s=0.5).start()
    try:
        wait_for(
            lambda: any(r["status"] == "SUCCESS" for r in old_scheduler.reports),
            what="the known task's success",
        )
    finally:
        executor.stop(10)
    messages = [r.getMessage() for r in caplog.records]
    assert any("takes no registrations" in m for m in messages)
    reported = [(r["taskId"], r["status"]) for r in old_scheduler.reports]
    if leased:
        assert ("x", "FAILED") not in reported
        (said,) = [m for m in messages if "this executor has no DAG 'elsewhere'" in m]
        assert "takes it back when its lease runs out" in said
    else:
        (failed,) = [r for r in old_scheduler.reports if r["taskId"] == "x"]
        assert failed["status"] == "FAILED"
        assert failed["taskError"].startswith("LookupError: this executor's registry has no DAG")
    assert ("hi", "SUCCESS") in reported


#: Queues as a list and repeated, labels repeated.
QUEUES_AND_LABELS = [
    *("--queue", "gpu,default", "--queue", "io"),
    *("--label", "zone=eu", "--label", "rack=3"),
]


def test_ppacer_executor_sends_the_queues_and_labels_of_its_flags(start_local):
    runner = start_local(dags, with_executor=False)
    proc = subprocess.Popen(
        [*PPACER_EXECUTOR, "--url", runner.url, "--name", "cli-box", *QUEUES_AND_LABELS],
        cwd=ROOT,
        env=clean_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        (listed,) = wait_for(
            lambda: [e for e in runner.client.list_executors()["items"] if e["registered"]],
            what="the registered executor",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert listed["name"] == "cli-box"
    assert sorted(listed["queues"]) == ["default", "gpu", "io"]
    assert listed["labels"] == {"zone": "eu", "rack": "3"}
    assert "queues gpu,default,io" in err


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--label", "no-equals-sign"], "executor.labels (from flag --label)"),
        (["--queue", " , "], "executor.queues (from flag --queue)"),
        (["--ca-file", "/no/such/ca.pem"], "ca_file (from flag --ca-file): no such file"),
    ],
)
def test_bad_executor_flags_are_one_line_and_exit_code_2(flags, problem):
    result = subprocess.run(
        [*PPACER_EXECUTOR, "--url", "http://127.0.0.1:9", *flags],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {problem}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_poll_longer_than_the_scheduler_takes_is_shortened_to_its_limit(
    start_local, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING, logger="ppacer.executor")
    runner = start_local(dags, with_executor=False, config=ppacer.Config(max_pop_wait_s=0.5))
    executor = Executor(runner.new_client(), dags, name="patient", poll_wait_s=30.0).start()
    try:
        run = runner.client.trigger_dag_run("hello")
        wait_for(
            lambda: runner.client.get_dag_run(run["runId"])["status"] == "SUCCESS",
            what="the run, on the executor's shortened polls",
        )
    finally:
        executor.stop(10)
    assert executor.poll_wait_s == 0.5
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        "poll_wait_s 30.0 s is longer than the scheduler takes "
        "(max_pop_wait_s 0.5 s): polling with 0.5 s"
    ]
