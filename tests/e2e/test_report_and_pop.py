"""``POST /dag/task/update/pop``: a report and the next attempt in one round trip.

An executor running a chain of tasks asks for the next attempt with the report
of the one it finished, so a hop costs one request. Schedulers without the
route (older ppacer, the original) answer 404 and the executor reports and
polls apart, as before.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest

import ppacer
import ppacer.app
from ppacer.api.models import StatusReport
from ppacer.dag.status import TaskStatus
from ppacer.errors import ConflictError, NotFoundError, PpacerError
from ppacer.executor.reporter import Reporter
from ppacer.local import LocalRunner
from ppacer.server import adapter
from ppacer.timeutils import ManualClock
from tests.conftest import query, wait_for, wait_run_finished

T0 = datetime(2024, 3, 11, 22, 50, 20, tzinfo=UTC)
ROUTE = "/dag/task/update/pop"


class Noop(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> None:
        pass


def chain_dag(dag_id: str, n: int) -> ppacer.Dag:
    root = ppacer.Node(Noop("t0"))
    node = root
    for i in range(1, n):
        node = node.next(Noop(f"t{i}"))
    return ppacer.Dag(dag_id).add_root(root).done()


def requests_by_route(url: str) -> dict[tuple[str, str], int]:
    """Requests the scheduler served, by (method, route template), from ``/metrics``."""
    text = httpx2.get(f"{url}/metrics", timeout=10).text
    counts: dict[tuple[str, str], int] = {}
    pattern = re.compile(r"^ppacer_http_request_duration_seconds_count\{(.*)\} (\S+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if match is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        key = (labels["method"], labels["route"])
        counts[key] = counts.get(key, 0) + int(float(match.group(2)))
    return counts


# ---------------------------------------------------------------------- executor chains


def test_a_chain_takes_one_request_per_hop(start_local, db_paths):
    n = 12
    runner = start_local(ppacer.Registry([chain_dag("chain", n)]))
    before = requests_by_route(runner.url)
    runner.client.trigger_dag_run("chain")
    (run,) = wait_run_finished(db_paths[0], "chain")
    assert run["Status"] == "SUCCESS"
    after = requests_by_route(runner.url)

    def served(method: str, route: str) -> int:
        return after.get((method, route), 0) - before.get((method, route), 0)

    # The first task came from the executor's long poll, each next one with its parent's
    # report: one request a hop. The last task readies nothing: its report goes alone.
    assert served("POST", ROUTE) == n - 1
    assert served("POST", "/dag/task/update") + served("POST", "/dag/task/update/batch") == 1
    statuses = query(
        db_paths[0], "SELECT Status, COUNT(*) AS c FROM dagruntasks WHERE DagId='chain' GROUP BY 1"
    )
    assert {(r["Status"], r["c"]) for r in statuses} == {("SUCCESS", n)}


def test_reports_that_ready_no_child_alone_go_in_batches(start_local, db_paths):
    root = ppacer.Node(Noop("root"))
    root.next_async_and_merge([Noop(f"b{i}") for i in range(20)], Noop("join"))
    runner = start_local(ppacer.Registry([ppacer.Dag("wide").add_root(root).done()]))
    before = requests_by_route(runner.url)
    runner.client.trigger_dag_run("wide")
    (run,) = wait_run_finished(db_paths[0], "wide")
    assert run["Status"] == "SUCCESS"
    after = requests_by_route(runner.url)
    # No task is a link of a chain: the root has 20 children, the join waits for 20
    # parents. The reports go with the reporter thread, in batches when they pile up.
    assert after.get(("POST", ROUTE), 0) - before.get(("POST", ROUTE), 0) == 0


@pytest.fixture
def without_report_and_pop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Schedulers started in the test have no ``POST /dag/task/update/pop`` (404), as an
    older ppacer or the original."""
    real = adapter.api_routes

    def api_routes(*args: Any, **kwargs: Any) -> list[Any]:
        return [r for r in real(*args, **kwargs) if r.name != "report_and_pop"]

    monkeypatch.setattr(ppacer.app, "api_routes", api_routes)


def test_against_a_scheduler_without_the_route_the_executor_falls_back(
    without_report_and_pop, start_local, db_paths, caplog
):
    n = 8
    runner = start_local(ppacer.Registry([chain_dag("chain", n)]))
    caplog.set_level(logging.INFO, logger="ppacer.executor")
    for expected_runs in (1, 2):
        runner.client.trigger_dag_run("chain", exec_ts=datetime(2024, 1, expected_runs, tzinfo=UTC))
        runs = wait_run_finished(db_paths[0], "chain", count=expected_runs)
        assert [r["Status"] for r in runs] == ["SUCCESS"] * expected_runs
    counts = requests_by_route(runner.url)
    # Asked once (404), then reports and pops apart for the rest of the executor's life.
    assert counts.get(("POST", "unmatched"), 0) == 1
    assert counts.get(("POST", ROUTE), 0) == 0
    reports = counts.get(("POST", "/dag/task/update"), 0)
    reports += counts.get(("POST", "/dag/task/update/batch"), 0)
    assert reports >= 2 * n - 1
    assert "takes no report with a pop" in caplog.text


# ---------------------------------------------------------------------- the route itself


@pytest.fixture
def server(start_local) -> Iterator[tuple[LocalRunner, httpx2.Client]]:
    """A scheduler without an executor (the test plays it) and a raw HTTP client."""
    root = ppacer.Node(Noop("start"))
    root.next(Noop("finish"))
    registry = ppacer.Registry([ppacer.Dag("example").add_root(root).done()])
    runner = start_local(registry, with_executor=False, clock=ManualClock(T0))
    with httpx2.Client(base_url=runner.url, timeout=10) as http:
        yield runner, http


def _report(task: dict[str, Any], status: str) -> dict[str, Any]:
    return {
        "dagId": task["dagId"],
        "execTs": task["execTs"],
        "taskId": task["taskId"],
        "retry": task["retry"],
        "status": status,
        "taskError": None,
        "leaseToken": task.get("leaseToken"),
    }


def _first(http: httpx2.Client) -> dict[str, Any]:
    assert http.post("/dag/run/trigger", json={"dagId": "example"}).status_code == 200
    response = http.get("/dag/task/pop/batch", params={"executor": "e1", "max": 1})
    assert response.status_code == 200, response.text
    (task,) = response.json()["tasks"]
    return dict(task)


def test_the_attempt_taken_is_leased_and_running(server, db_paths):
    _, http = server
    start = _first(http)
    response = http.post(
        ROUTE, json={"updates": [_report(start, "SUCCESS")], "executor": "e1", "max": 1}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"] == [{"status": 200, "error": None}]
    (task,) = body["tasks"]
    assert task["taskId"] == "finish"
    assert task["status"] == "RUNNING"
    assert task["leaseToken"]
    assert task["leaseTimeoutS"] > 0

    # RUNNING as handed out; its row is written with the next transaction (within 20 ms).
    def rows() -> list[tuple[Any, ...]]:
        found = query(
            db_paths[0],
            "SELECT t.TaskId, t.Status, s.Executor FROM dagruntasks t JOIN dagruntaskstarts s "
            "USING (DagId, ExecTs, TaskId, Retry) WHERE t.DagId='example' ORDER BY t.TaskId",
        )
        return [tuple(r) for r in found]

    expected = [("finish", "RUNNING", "e1"), ("start", "SUCCESS", "e1")]
    wait_for(lambda: rows() == expected, 5, "the RUNNING row")
    # The lease is the executor's: its heartbeat renews it, another token is refused.
    finish = _report(task, "SUCCESS")
    stale = {**finish, "leaseToken": "not-the-lease"}
    assert http.post("/dag/task/update", json=stale).status_code == 409
    assert http.post("/dag/task/update", json=finish).status_code == 200
    (run,) = wait_run_finished(db_paths[0], "example")
    assert run["Status"] == "SUCCESS"


def test_what_a_report_made_ready_goes_to_its_sender_before_a_waiting_poll(server):
    _, http = server
    start = _first(http)
    polled: list[int] = []

    def long_poll() -> None:
        with httpx2.Client(base_url=str(http.base_url), timeout=10) as other:
            answer = other.get("/dag/task/pop", params={"wait_s": "1", "executor": "e2"})
            polled.append(answer.status_code)

    poller = threading.Thread(target=long_poll)
    poller.start()
    try:
        # The poll is waiting before the report arrives.
        time.sleep(0.2)
        response = http.post(
            ROUTE, json={"updates": [_report(start, "SUCCESS")], "executor": "e1", "max": 1}
        )
    finally:
        poller.join(5)
    assert [t["taskId"] for t in response.json()["tasks"]] == ["finish"]
    assert polled == [204]


def test_max_zero_only_reports_and_nothing_ready_is_an_empty_list(server, db_paths):
    _, http = server
    start = _first(http)
    body = {"updates": [_report(start, "SUCCESS")], "executor": "e1", "max": 0}
    answer = http.post(ROUTE, json=body).json()
    assert answer == {"results": [{"status": 200, "error": None}], "tasks": []}
    # "finish" is ready and waits in the queue for the next pop.
    (task,) = http.get("/dag/task/pop/batch", params={"executor": "e1"}).json()["tasks"]
    assert task["taskId"] == "finish"
    body = {"updates": [_report(task, "SUCCESS")], "executor": "e1", "max": 5}
    answer = http.post(ROUTE, json=body).json()
    assert answer == {"results": [{"status": 200, "error": None}], "tasks": []}


def test_refused_reports_answer_per_report_and_the_pop_still_happens(server):
    _, http = server
    start = _first(http)
    ghost = {**_report(start, "SUCCESS"), "taskId": "ghost"}
    stale = {**_report(start, "SUCCESS"), "leaseToken": "not-the-lease"}
    bad_ts = {**_report(start, "SUCCESS"), "execTs": "yesterday"}
    body = {"updates": [ghost, stale, bad_ts, _report(start, "SUCCESS")], "executor": "e1"}
    answer = http.post(ROUTE, json=body).json()
    assert [r["status"] for r in answer["results"]] == [404, 409, 400, 200]
    assert answer["results"][2]["error"].startswith("updates.2.execTs")
    assert [t["taskId"] for t in answer["tasks"]] == ["finish"]


@pytest.mark.parametrize(
    "body",
    [
        {"updates": []},  # no executor
        {"updates": [], "executor": ""},
        {"updates": [], "executor": "e1", "max": 1001},
        {"updates": [], "executor": "e1", "max": -1},
        {"updates": "no", "executor": "e1"},
    ],
)
def test_malformed_bodies_are_400(server, body):
    _, http = server
    assert http.post(ROUTE, json=body).status_code == 400


# ---------------------------------------------------------------------- the reporter


class FakeClient:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls = 0

    def report_and_pop(
        self, reports: list[StatusReport], executor: str, max_n: int = 1
    ) -> tuple[list[PpacerError | None], list[Any]]:
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer  # type: ignore[no-any-return]


def _status_report() -> StatusReport:
    return StatusReport(
        dag_id="example",
        exec_ts="2024-03-11T22:50:20.000000UTC+00:00",
        task_id="start",
        retry=0,
        status=TaskStatus.SUCCESS,
    )


def test_a_report_refused_with_the_pop_is_logged(caplog):
    client = FakeClient(([ConflictError("stale lease token (held by executor e2)")], []))
    reporter = Reporter(client, "e1")  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="ppacer.executor"):
        assert reporter.deliver_and_take(_status_report(), "e1") == []
    assert "scheduler refused SUCCESS" in caplog.text
    assert "held by executor e2" in caplog.text


def test_a_404_turns_the_chain_off_for_good():
    client = FakeClient(NotFoundError("HTTP 404"))
    reporter = Reporter(client, "e1")  # type: ignore[arg-type]
    assert reporter.deliver_and_take(_status_report(), "e1") is None
    assert reporter.deliver_and_take(_status_report(), "e1") is None
    assert client.calls == 1


def test_an_unreachable_scheduler_leaves_the_report_to_the_retrying_queue():
    client = FakeClient(OSError("connection refused"))
    reporter = Reporter(client, "e1")  # type: ignore[arg-type]
    assert reporter.deliver_and_take(_status_report(), "e1") is None
    # Not turned off: the next hop asks again.
    assert reporter.deliver_and_take(_status_report(), "e1") is None
    assert client.calls == 2
