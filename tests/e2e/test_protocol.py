"""The original ppacer's HTTP protocol, spoken with raw JSON as a Go client sends it.

A scheduler without an executor, so the test plays the executor by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest

import ppacer
from ppacer.local import LocalRunner
from ppacer.timeutils import ManualClock
from tests.conftest import query

T0 = datetime(2024, 3, 11, 22, 50, 20, tzinfo=UTC)


class Noop(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> None:
        pass


@pytest.fixture
def server(start_local) -> Iterator[tuple[LocalRunner, httpx2.Client]]:
    root = ppacer.Node(Noop("start"))
    root.next(Noop("finish"))
    registry = ppacer.Registry([ppacer.Dag("example").add_root(root).done()])
    runner = start_local(registry, with_executor=False, clock=ManualClock(T0))
    with httpx2.Client(base_url=runner.url, timeout=10) as http:
        yield runner, http


def pop(http: httpx2.Client) -> dict[str, Any]:
    response = http.get("/dag/task/pop")
    assert response.status_code == 200, response.text
    return dict(response.json())


def report(http: httpx2.Client, task: dict[str, Any], status: str, **extra: Any) -> httpx2.Response:
    body = {
        "dagId": task["dagId"],
        "execTs": task["execTs"],
        "taskId": task["taskId"],
        "retry": task["retry"],
        "status": status,
        "taskError": None,
    }
    body.update(extra)
    return http.post("/dag/task/update", json=body)


def test_state_is_running(server):
    _, http = server
    response = http.get("/state")
    assert response.status_code == 200
    assert response.json() == {"state": "RUNNING"}


def test_pop_with_nothing_ready_is_204_with_empty_body(server):
    _, http = server
    response = http.get("/dag/task/pop")
    assert response.status_code == 204
    assert response.content == b""


def test_long_poll_waits_then_answers_204(server):
    _, http = server
    response = http.get("/dag/task/pop", params={"wait_s": "0.05"})
    assert response.status_code == 204


def test_trigger_pop_update_completes_a_run(server, db_paths):
    _, http = server
    assert http.post("/dag/run/trigger", json={"dagId": "example"}).status_code == 200
    task = pop(http)
    assert set(task) >= {"dagId", "execTs", "taskId", "retry"}
    assert (task["dagId"], task["taskId"], task["retry"]) == ("example", "start", 0)
    assert task["execTs"] == "2024-03-11T22:50:20.000000UTC+00:00"
    assert report(http, task, "RUNNING").status_code == 200
    assert report(http, task, "SUCCESS").status_code == 200
    finish = pop(http)
    assert finish["taskId"] == "finish"
    # The original's own timestamp form (fraction trimmed) names the same run.
    finish["execTs"] = "2024-03-11T22:50:20UTC+00:00"
    assert report(http, finish, "RUNNING").status_code == 200
    assert report(http, finish, "SUCCESS").status_code == 200
    (run,) = query(db_paths[0], "SELECT * FROM dagruns")
    assert run["Status"] == "SUCCESS"
    # A repeated report changes nothing and is accepted.
    assert report(http, finish, "SUCCESS").status_code == 200


def test_unknown_fields_are_ignored(server):
    _, http = server
    response = http.post("/dag/run/trigger", json={"dagId": "example", "whatever": [1, 2]})
    assert response.status_code == 200
    task = pop(http)
    assert report(http, task, "RUNNING", extraField="x").status_code == 200


def test_trigger_unknown_dag_is_404_naming_it(server):
    _, http = server
    response = http.post("/dag/run/trigger", json={"dagId": "nope"})
    assert response.status_code == 404
    assert "nope" in response.json()["error"]


@pytest.mark.parametrize(
    ("literal", "named"), [("NaN", "NaN"), ("-Infinity", "-Infinity"), ("1e400", "1e400")]
)
def test_non_finite_numbers_are_400_and_create_nothing(server, db_paths, literal, named):
    # Python's json reads NaN, Infinity and 1e400; JSON has none of them, and
    # such a value, once stored, could not be served back to the executor.
    _, http = server
    body = b'{"dagId": "example", "params": {"a": ' + literal.encode() + b"}}"
    response = http.post(
        "/dag/run/trigger", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    answer = response.json()
    assert answer["error"].startswith("body: not valid JSON") and named in answer["error"]
    assert query(db_paths[0], "SELECT COUNT(*) AS n FROM dagruns")[0]["n"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (
            b'{"dagId": "example", "execTs": "2024-03-11T22:50:20UTC+00:00", "taskId": "start",'
            b' "retry": "0", "status": "RUNNING"}',
            "retry",
        ),
        (
            b'{"execTs": "2024-03-11T22:50:20UTC+00:00", "taskId": "start", "retry": 0,'
            b' "status": "RUNNING"}',
            "dagId",
        ),
        (
            b'{"dagId": "example", "execTs": "yesterday", "taskId": "start", "retry": 0,'
            b' "status": "RUNNING"}',
            "execTs",
        ),
        (
            b'{"dagId": "example", "execTs": "2024-03-11T22:50:20UTC+00:00", "taskId": "start",'
            b' "retry": 0, "status": "DONE"}',
            "status",
        ),
        (
            b'{"dagId": "example", "execTs": "2024-03-11T22:50:20UTC+00:00", "taskId": "start",'
            b' "retry": -1, "status": "RUNNING"}',
            "retry",
        ),
    ],
)
def test_malformed_update_is_400_naming_the_field(server, body, field):
    _, http = server
    response = http.post(
        "/dag/task/update", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    answer = response.json()
    assert field in answer["error"]
    if answer["detail"] is not None:  # field-by-field, when the body was a JSON object
        assert field in [d["field"] for d in answer["detail"]]
        assert all(d["problem"] for d in answer["detail"])
    else:
        assert field == "body"


def test_update_for_unknown_run_or_task_is_404(server):
    _, http = server
    task = {
        "dagId": "example",
        "execTs": "2024-03-11T22:50:20UTC+00:00",
        "taskId": "start",
        "retry": 0,
    }
    assert report(http, task, "RUNNING").status_code == 404
    http.post("/dag/run/trigger", json={"dagId": "example"})
    response = report(http, {**task, "taskId": "ghost"}, "RUNNING")
    assert response.status_code == 404
    assert "ghost" in response.json()["error"]


def test_stale_or_illegal_reports_are_409_and_change_nothing(server, db_paths):
    _, http = server
    http.post("/dag/run/trigger", json={"dagId": "example"})
    task = pop(http)
    response = report(http, {**task, "retry": 1}, "RUNNING")
    assert response.status_code == 409
    assert "retry 1" in response.json()["error"]
    assert report(http, task, "RUNNING").status_code == 200
    assert report(http, task, "SUCCESS").status_code == 200
    response = report(http, task, "FAILED", taskError="late")
    assert response.status_code == 409
    assert "SUCCESS" in response.json()["error"]
    rows = query(db_paths[0], "SELECT Status FROM dagruntasks WHERE TaskId='start'")
    assert [r["Status"] for r in rows] == ["SUCCESS"]


def test_restart_answers(server):
    _, http = server
    http.post("/dag/run/trigger", json={"dagId": "example"})
    ts = pop(http)["execTs"]
    response = http.post("/dag/run/restart", json={"dagId": "example", "execTs": ts})
    assert response.status_code == 400
    assert "FAILED" in response.json()["error"]
    response = http.post(
        "/dag/run/restart", json={"dagId": "example", "execTs": "2020-01-01T00:00:00UTC+00:00"}
    )
    assert response.status_code == 404
    response = http.post("/dag/run/restart", json={"dagId": "ghost", "execTs": ts})
    assert response.status_code == 404


def test_ui_endpoints_describe_runs(server):
    _, http = server
    http.post("/dag/run/trigger", json={"dagId": "example"})
    task = pop(http)
    report(http, task, "RUNNING")
    stats = http.get("/ui/dagrun/stats").json()
    assert stats["dagruns"]["running"] == 1
    assert stats["dagrunTasks"]["running"] == 1
    latest = http.get("/ui/dagrun/latest/10").json()
    assert [(r["dagId"], r["status"], r["taskNum"], r["taskCompletedNum"]) for r in latest] == [
        ("example", "RUNNING", 2, 0)
    ]
    run_id = latest[0]["runId"]
    details = http.get(f"/ui/dagrun/{run_id}").json()
    assert details["dagId"] == "example"
    assert [t["taskId"] for t in details["tasks"]] == ["start", "finish"]
    one = http.get(f"/ui/dagrun/task/{run_id}/start/0").json()
    assert one["taskId"] == "start" and one["status"] == "RUNNING"
    assert http.get("/ui/dagrun/999").status_code == 404
    assert http.get("/ui/dagrun/abc").status_code == 400


def test_unknown_path_and_method_get_the_error_shape(server):
    _, http = server
    response = http.get("/no/such/thing")
    assert response.status_code == 404
    assert response.json()["error"] == "Not Found"
    response = http.get("/dag/run/trigger")
    assert response.status_code == 405
    assert "error" in response.json()


def test_batch_pop_and_batch_report_extensions(server):
    _, http = server
    for day in (1, 2, 3):
        trigger = {"dagId": "example", "execTs": f"2024-03-0{day}T00:00:00Z"}
        assert http.post("/dag/run/trigger", json=trigger).status_code == 200
    response = http.get("/dag/task/pop/batch", params={"max": 2, "executor": "x"})
    assert response.status_code == 200
    tasks = response.json()["tasks"]
    assert len(tasks) == 2 and all(t["status"] == "RUNNING" and t["leaseToken"] for t in tasks)
    first, second = tasks
    updates = [
        {**{k: first[k] for k in ("dagId", "execTs", "taskId", "retry")}, "status": "SUCCESS"},
        {
            **{k: second[k] for k in ("dagId", "execTs", "taskId", "retry")},
            "status": "SUCCESS",
            "leaseToken": "forged",
        },
        {
            "dagId": "ghost",
            "execTs": first["execTs"],
            "taskId": "start",
            "retry": 0,
            "status": "SUCCESS",
        },
        {**{k: first[k] for k in ("dagId", "execTs", "taskId", "retry")}, "status": "BOGUS"},
    ]
    results = http.post("/dag/task/update/batch", json={"updates": updates}).json()["results"]
    assert [r["status"] for r in results] == [200, 409, 404, 400]
    assert "lease token is stale" in results[1]["error"]
    assert "updates.3.status" in results[3]["error"]
    rows = query(
        runner_db(server), "SELECT ExecTs, TaskId, Status FROM dagruntasks ORDER BY ExecTs, TaskId"
    )
    by_key = {(r["ExecTs"][:10], r["TaskId"]): r["Status"] for r in rows}
    assert by_key[("2024-03-01", "start")] == "SUCCESS"
    assert by_key[("2024-03-01", "finish")] == "SCHEDULED"
    response = http.get("/dag/task/pop/batch", params={"max": 0})
    assert response.status_code == 400 and "max" in response.json()["error"]
    response = http.post("/dag/task/update/batch", json={"updates": "no"})
    assert response.status_code == 400 and "updates" in response.json()["error"]


def runner_db(server: tuple[LocalRunner, httpx2.Client]) -> str:
    runner, _ = server
    return str(runner.scheduler.engine.url.database)
