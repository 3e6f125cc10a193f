"""Routing: executors get only attempts of the queues they serve and the code they have.

Driven at the protocol level (the executor's side of it has its own tests): a
real scheduler on a loopback port, "executors" that register, pop and report
over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

import ppacer
from ppacer.local import LocalRunner
from tests.conftest import query, wait_for


@ppacer.task
def prepare(ctx: ppacer.TaskContext) -> None:
    """Runs anywhere."""


@ppacer.task
def train(ctx: ppacer.TaskContext) -> None:
    """Needs a GPU."""


def _dag() -> ppacer.Dag:
    root = ppacer.Node(prepare)
    root.next(train, ppacer.TaskConfig(queue="gpu"))
    return ppacer.Dag("routed", root=root).done()


@pytest.fixture
def scheduler(db_paths: tuple[Path, Path]) -> Iterator[tuple[LocalRunner, httpx2.Client]]:
    db, logs = db_paths
    runner = LocalRunner(ppacer.Registry([_dag()]), str(db), str(logs), port=0).start()
    assert runner.executor is not None
    runner.executor.stop(5)  # the test plays the executors
    with httpx2.Client(base_url=runner.url, timeout=10) as http:
        yield runner, http
    runner.stop()


def _versions(**override: str) -> dict[str, dict[str, str]]:
    dag = _dag()
    versions = {t: info.code_version for t, info in dag.tasks.items()}
    return {"routed": {**versions, **override}}


def _register(http: httpx2.Client, name: str, queues: list[str], versions: Any) -> Any:
    body = {"executor": name, "queues": queues, "versions": versions, "labels": {"zone": "a"}}
    answer = http.post("/executor/register", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _pop(http: httpx2.Client, executor: str | None, wait_s: float = 0.0) -> Any:
    params: dict[str, Any] = {"wait_s": wait_s}
    if executor is not None:
        params["executor"] = executor
    answer = http.get("/dag/task/pop", params=params)
    return None if answer.status_code == 204 else answer.json()


def _succeed(http: httpx2.Client, task: Any) -> None:
    report = {k: task[k] for k in ("dagId", "execTs", "taskId", "retry", "leaseToken")}
    answer = http.post("/dag/task/update", json={**report, "status": "SUCCESS"})
    assert answer.status_code == 200, answer.text


def test_queues_and_code_versions_decide_who_runs_what(scheduler, db_paths) -> None:
    runner, http = scheduler
    cpu = _register(http, "cpu-1", ["default"], _versions())
    assert cpu["missingTasks"] == [] and cpu["mismatchedTasks"] == []  # gpu work isn't its
    gpu = _register(http, "gpu-1", ["gpu"], _versions(train="0000000000000000"))
    assert gpu["mismatchedTasks"] == ["routed/train"]
    run_id = runner.client.trigger_dag_run("routed")["runId"]

    assert _pop(http, "gpu-1", wait_s=0.1) is None  # nothing of its queue yet
    first = wait_for(lambda: _pop(http, "cpu-1"), 10, "prepare")
    assert first["taskId"] == "prepare"
    _succeed(http, first)

    # train is queued on "gpu": the CPU executor and anonymous clients never get it,
    # and the GPU executor has other code for it: it waits, and says why.
    def waiting() -> str | None:
        tasks = runner.client.get_dag_run(run_id)["tasks"]
        return next(t["waitingReason"] for t in tasks if t["taskId"] == "train")

    reason = wait_for(waiting, 10, "train to be queued")
    assert "code version" in reason and "gpu-1 has 0000000000000000" in reason
    assert _pop(http, "cpu-1") is None and _pop(http, None) is None
    assert _pop(http, "gpu-1") is None
    metrics = http.get("/metrics").text
    assert 'ppacer_waiting_tasks{queue="gpu"} 1.0' in metrics
    executors = {e["name"]: e for e in runner.client.list_executors()["items"]}
    assert executors["gpu-1"]["queues"] == ["gpu"] and executors["gpu-1"]["registered"]
    assert executors["cpu-1"]["labels"] == {"zone": "a"}

    # The right code arrives: the long poll gets train at once.
    _register(http, "gpu-1", ["gpu"], _versions())
    second = _pop(http, "gpu-1", wait_s=5)
    assert second is not None and second["taskId"] == "train"
    _succeed(http, second)
    wait_for(lambda: runner.client.get_dag_run(run_id)["status"] == "SUCCESS", 10, "the run")

    rows = query(
        db_paths[0],
        "SELECT t.TaskId, s.Executor, s.CodeVersion, t.InsertTs, s.StartTs, t.StatusUpdateTs "
        "FROM dagruntasks t JOIN dagruntaskstarts s USING (DagId, ExecTs, TaskId, Retry) "
        "ORDER BY t.InsertTs",
    )
    versions = _versions()["routed"]
    assert [(r["TaskId"], r["Executor"], r["CodeVersion"]) for r in rows] == [
        ("prepare", "cpu-1", versions["prepare"]),
        ("train", "gpu-1", versions["train"]),
    ]
    train_row = rows[1]
    assert train_row["InsertTs"] < train_row["StartTs"] <= train_row["StatusUpdateTs"]
    details = runner.client.get_dag_run(run_id)["tasks"]
    assert [t["executor"] for t in details] == ["cpu-1", "gpu-1"]
    assert all(t["waitingReason"] is None for t in details)


def test_clients_that_announce_nothing_run_any_version_recorded_as_unknown(
    scheduler, db_paths
) -> None:
    runner, http = scheduler
    run_id = runner.client.trigger_dag_run("routed")["runId"]
    task = wait_for(lambda: _pop(http, None), 10, "an anonymous pop")  # the original's way
    assert task["taskId"] == "prepare"
    _succeed(http, task)
    sql = "SELECT Executor, CodeVersion, StartTs FROM dagruntaskstarts WHERE TaskId = 'prepare'"
    rows = query(db_paths[0], sql)
    assert [(r["Executor"], r["CodeVersion"]) for r in rows] == [(None, None)]
    assert rows[0]["StartTs"] is not None
    assert runner.client.get_dag_run(run_id)["status"] == "RUNNING"  # train waits for a GPU


def test_an_executor_of_a_newer_protocol_is_refused_with_both_versions(scheduler) -> None:
    _, http = scheduler
    answer = http.post("/executor/register", json={"executor": "future", "protocolVersion": 99})
    error = answer.json()["error"]
    assert answer.status_code == 409
    assert "protocol 99" in error and "upgrade the scheduler" in error
