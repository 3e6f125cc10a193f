"""The API contract: schemathesis against a live scheduler's /openapi.json, and the Client.

Every operation of the document gets generated requests (bounded: a few dozen
per operation); no answer may be a 5xx, use an undocumented status code or
content type, or break its response schema.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx2
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

import ppacer
from ppacer.api.openapi import build_openapi
from ppacer.api.routes import ROUTES
from ppacer.local import LocalRunner
from ppacer.scheduler.config import Config
from tests.conftest import wait_for

T0 = datetime(2024, 3, 11, 12, 0, tzinfo=UTC)
# Examples per operation: bounded for CI; raise it locally to search harder.
_EXAMPLES = int(os.environ.get("PPACER_TEST_API_EXAMPLES", "30"))
_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@ppacer.task
def greet(ctx: ppacer.TaskContext) -> None:
    ctx.logger.info("hello %s", dict(ctx.params))


@ppacer.task
def broken(ctx: ppacer.TaskContext) -> None:
    raise RuntimeError("on purpose")


def _registry() -> ppacer.Registry:
    hourly = ppacer.Dag(
        "hourly", schedule=ppacer.FixedSchedule(T0, timedelta(hours=1)), root=ppacer.Node(greet)
    )
    manual = ppacer.Dag("manual", root=ppacer.Node(broken))
    return ppacer.Registry([hourly.done(), manual.done()])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRunner]:
    """A scheduler + executor with some history: a successful and a failed run."""
    tmp = tmp_path_factory.mktemp("openapi")
    runner = LocalRunner(
        _registry(),
        str(tmp / "scheduler.db"),
        str(tmp / "logs.db"),
        port=0,
        config=Config(max_pop_wait_s=0.2),
        stop_timeout_s=10.0,
    ).start()
    runner.executor.poll_wait_s = 0.2  # type: ignore[union-attr]
    client = runner.client
    client.trigger_dag_run("hourly", {"who": "schemathesis"})
    failed = client.trigger_dag_run("manual")
    wait_for(lambda: client.get_dag_run(failed["runId"])["status"] == "FAILED", what="a FAILED run")
    yield runner
    runner.stop()


@pytest.fixture(scope="module")
def live_schema(live: LocalRunner) -> Any:
    """The document as the live scheduler serves it, loaded by schemathesis."""
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    schema.config.update(base_url=live.url)
    return schema


# Every operation of the document (built here the way the server builds it).
_OPERATIONS = sorted(
    (method.upper(), path)
    for path, methods in build_openapi(max_pop_wait_s=0.2)["paths"].items()
    for method in methods
)


@pytest.mark.parametrize(("method", "path"), _OPERATIONS, ids=[f"{m} {p}" for m, p in _OPERATIONS])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_api_answers_as_documented(
    live_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    """Generated requests (a bounded number per operation) get documented answers.

    Valid requests (positive) get an answer the document allows; invalid ones
    (negative: wrong types, out-of-range numbers, missing fields) are rejected
    with a documented 4xx, never a 5xx.
    """
    operation = live_schema[path][method]
    checks = [*_CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else _CHECKS

    @hypothesis.given(case=operation.as_strategy(mode))
    @hypothesis.settings(
        max_examples=_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    def check(case: Any) -> None:
        case.call_and_validate(checks=checks)

    try:
        check()
    except hypothesis.errors.Unsatisfiable:
        # Nothing to get wrong: no parameters or body (or none that can be invalid on the wire).
        assert mode is GenerationMode.NEGATIVE
        pytest.skip("no invalid input exists for this operation")


def test_every_route_is_documented() -> None:
    doc = build_openapi()
    for route in ROUTES.values():
        operation = doc["paths"][route.path][route.method.lower()]
        assert operation["operationId"] == route.name and operation["summary"], route.name
    assert doc["openapi"].startswith("3.")
    assert "/healthz" in doc["paths"] and "/metrics" in doc["paths"]


def test_client_answers_match_the_document(live: LocalRunner) -> None:
    """Every answer the Client gets validates against the schema of its operation."""
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    seen: list[httpx2.Response] = []
    client = ppacer.Client(live.url)
    http = client._transport._hosts[0]  # the one URL's connection
    send = http.request

    def record(method: str, path: str, **kwargs: Any) -> Any:
        answer = send(method, path, **kwargs)
        query = f"?{urlencode(kwargs['params'])}" if kwargs.get("params") else ""
        request = httpx2.Request(method, f"{live.url}{path}{query}")
        response = httpx2.Response(
            answer.status_code, headers=answer.headers, content=answer.content, request=request
        )
        response.elapsed = timedelta(0)  # complete, as a response read from the network
        seen.append(response)
        return answer

    http.request = record  # type: ignore[method-assign]
    try:
        dags = client.list_dags()
        assert [d["dagId"] for d in dags["items"]] == ["hourly", "manual"]
        client.get_dag("hourly")
        runs = client.list_dag_runs(limit=10)
        assert runs["total"] >= 2
        run_id = runs["items"][0]["runId"]
        run = client.get_dag_run(run_id)
        client.get_task_logs(run_id, run["tasks"][0]["taskId"])
        client.list_executors()
        client.list_dag_runs(dag_id="manual", status="FAILED")
        client.schedule_preview("hourly", 3)
        client.dag_run_history(run_id)
        client.ui_dagrun_stats()
        client.ui_dagrun_latest(5)
        client.ui_dagrun_details(run_id)
        client.get_state()
        client.pause_dag("hourly")
        client.unpause_dag("hourly")
        with pytest.raises(ppacer.errors.NotFoundError):
            client.get_dag("nope")
    finally:
        client.close()
    assert len(seen) >= 16
    for response in seen:
        path = response.request.url.path
        operation = schema.find_operation_by_path(response.request.method, path)
        assert operation is not None, path
        operation.validate_response(response)


def test_docs_are_served_from_the_package(live: LocalRunner) -> None:
    with httpx2.Client(base_url=live.url) as http:
        page = http.get("/docs")
        assert page.status_code == 200
        assert "/docs/static/swagger-ui-bundle.js" in page.text
        assert "http" not in page.text.split("<body>")[1].replace("/openapi.json", "")
        bundle = http.get("/docs/static/swagger-ui-bundle.js")
        assert bundle.status_code == 200 and len(bundle.content) > 100_000
        assert http.get("/docs/static/swagger-ui.css").status_code == 200
        assert http.get("/openapi.json").json()["info"]["title"] == "ppacer scheduler API"


def test_errors_share_one_shape(live: LocalRunner) -> None:
    with httpx2.Client(base_url=live.url) as http:
        answers = [
            http.get("/no/such/path"),
            http.post("/dag/run/trigger", content=b"{not json"),
            http.post("/dag/run/trigger", json={"dagId": "nope"}),
            http.get("/dag/run/list", params={"limit": "many"}),
            http.get("/dag/run/details/999999"),
            http.delete("/dag/list"),
        ]
    assert [a.status_code for a in answers] == [404, 400, 404, 400, 404, 405]
    for answer in answers:
        body = answer.json()
        assert set(body) == {"error", "detail"} and isinstance(body["error"], str)
