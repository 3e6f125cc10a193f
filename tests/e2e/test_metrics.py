"""Observability of a live scheduler: /metrics (parsed as Prometheus does), /healthz, the token."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

import ppacer
from ppacer.dag.task import task_logger
from ppacer.local import LocalRunner
from ppacer.logconfig import JsonLogFormatter
from ppacer.scheduler.config import Config
from tests.conftest import wait_for


@ppacer.task
def fine(ctx: ppacer.TaskContext) -> None:
    ctx.logger.info("fine")


@ppacer.task
def failing(ctx: ppacer.TaskContext) -> None:
    raise ValueError("no")


def _registry() -> ppacer.Registry:
    ok = ppacer.Dag("ok", root=ppacer.Node(fine))
    ok.root.next(ppacer.Node(failing, ppacer.TaskConfig(retries=0)))  # type: ignore[union-attr]
    return ppacer.Registry([ok.done(), ppacer.Dag("good", root=ppacer.Node(fine)).done()])


Samples = dict[str, list[tuple[dict[str, str], float]]]


def _scrape(url: str, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx2.get(f"{url}/metrics", headers=headers)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def _value(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    return sum(
        v for lab, v in samples.get(name, []) if all(lab.get(k) == w for k, w in labels.items())
    )


def test_metrics_count_runs_tasks_requests_and_executors(start_local):
    runner = start_local(_registry())
    good = runner.client.trigger_dag_run("good")
    bad = runner.client.trigger_dag_run("ok")
    for run in (good, bad):
        wait_for(
            lambda r=run: runner.client.get_dag_run(r["runId"])["status"] in ("SUCCESS", "FAILED"),
            what="runs to finish",
        )

    def scraped():
        m = _scrape(runner.url)
        # The loop-lag ticker runs every half second: wait for its first sample too.
        return m if _value(m, "ppacer_scheduler_loop_lag_seconds_count") >= 1 else None

    m = wait_for(scraped, what="a loop-lag sample")
    assert _value(m, "ppacer_dag_runs", status="SUCCESS") == 1
    assert _value(m, "ppacer_dag_runs", status="FAILED") == 1
    assert _value(m, "ppacer_task_attempts", status="SUCCESS") == 2
    assert _value(m, "ppacer_task_attempts", status="FAILED") == 1
    assert _value(m, "ppacer_task_status_changes_total", status="RUNNING") == 3
    assert _value(m, "ppacer_task_duration_seconds_count", dag_id="ok", status="FAILED") == 1
    assert _value(m, "ppacer_task_duration_seconds_count", dag_id="good", status="SUCCESS") == 1
    assert _value(m, "ppacer_scheduler_state", state="RUNNING") == 1
    assert _value(m, "ppacer_ready_tasks") == 0
    assert "ppacer_dag_run_queue_length" in m and "ppacer_queued_dag_runs" in m
    trigger = _value(
        m,
        "ppacer_http_request_duration_seconds_count",
        method="POST",
        route="/dag/run/trigger",
        status="200",
    )
    assert trigger == 2
    # Route templates, not raw paths, label the requests.
    routes = {lab["route"] for lab, _ in m["ppacer_http_request_duration_seconds_count"]}
    assert "/dag/run/details/{runId}" in routes
    assert not any(r.startswith("/dag/run/details/1") for r in routes)
    assert _value(m, "ppacer_executors") == 1
    [(labels, age)] = m["ppacer_executor_last_heartbeat_age_seconds"]
    assert labels["executor"] == runner.executor.name and 0 <= age < 30
    assert _value(m, "ppacer_executor_capacity") == runner.executor.concurrency


def test_each_scheduler_has_its_own_registry(tmp_path):
    first = LocalRunner(_registry(), str(tmp_path / "a.db"), None, port=0, with_executor=False)
    second = LocalRunner(_registry(), str(tmp_path / "b.db"), None, port=0, with_executor=False)
    try:
        first.start()
        second.start()
        first.client.trigger_dag_run("good")
        wait_for(lambda: _value(_scrape(first.url), "ppacer_dag_runs", status="SCHEDULED") == 1)
        assert _value(_scrape(second.url), "ppacer_dag_runs", status="SCHEDULED") == 0
    finally:
        first.stop()
        second.stop()


def test_healthz_reports_checks_and_a_stopped_loop(start_local):
    runner = start_local(_registry())
    answer = httpx2.get(f"{runner.url}/healthz")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok"
    assert body["checks"]["db"] == "ok" and body["checks"]["logsDb"] == "ok"
    assert set(body["checks"]["loops"]) == {
        "ppacer-dagrun-watcher",
        "ppacer-task-scheduler",
        "ppacer-backfiller",
    }
    # A loop that stops makes the scheduler unhealthy (orchestrators restart it).
    scheduler = runner.scheduler
    assert scheduler._loop is not None
    watcher = next(t for t in scheduler._loops if t.get_name() == "ppacer-dagrun-watcher")
    asyncio.run_coroutine_threadsafe(_cancel(watcher), scheduler._loop).result(5)
    answer = httpx2.get(f"{runner.url}/healthz")
    assert answer.status_code == 503
    assert answer.json()["status"] == "unhealthy"
    assert answer.json()["checks"]["loops"]["ppacer-dagrun-watcher"] == "stopped"


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_api_token_guards_the_api_but_not_health_docs_or_ui_pages(start_local):
    runner = start_local(_registry(), config=Config(api_token="s3cret"))
    # The embedded executor uses the token: runs finish.
    run = runner.client.trigger_dag_run("good")
    wait_for(lambda: runner.client.get_dag_run(run["runId"])["status"] == "SUCCESS")
    with httpx2.Client(base_url=runner.url) as http:
        for path in ("/dag/list", "/metrics", "/ui/dagrun/stats", "/state", "/executor/list"):
            answer = http.get(path)
            assert answer.status_code == 401, path
            assert answer.json()["error"] == "unauthorized: missing API token"
            assert answer.headers["www-authenticate"] == "Bearer"
        wrong = http.get("/dag/list", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "wrong API token" in wrong.json()["error"]
        assert http.post("/dag/run/trigger", json={"dagId": "good"}).status_code == 401
        for path in ("/healthz", "/docs", "/openapi.json"):
            assert http.get(path).status_code == 200, path
        # UI pages answer (the UI has its own login), never with the API's 401.
        assert http.get("/ui", follow_redirects=False).status_code in (200, 303)
    assert "s3cret" not in httpx2.get(f"{runner.url}/openapi.json").text
    assert _value(_scrape(runner.url, "s3cret"), "ppacer_dag_runs", status="SUCCESS") == 1
    doc = httpx2.get(f"{runner.url}/openapi.json").json()
    assert doc["security"] == [{"bearer": []}]
    assert "401" in doc["paths"]["/dag/list"]["get"]["responses"]


def test_json_log_lines_carry_dag_run_and_task_ids():
    formatter = JsonLogFormatter()
    base = logging.getLogger("ppacer.task.test")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    base.addHandler(keep)
    try:
        task_logger(base, "d", "2024-03-11T12:00:00.000000UTC+00:00", "t", 2, 9).warning(
            "hello %s", "there", extra={"rows": 3}
        )
        logging.getLogger("ppacer.scheduler.test").addHandler(keep)
        logging.getLogger("ppacer.scheduler.test").warning(
            "DAG run triggered dagId=d execTs=2024-03-11T12:00:00Z runId=7"
        )
    finally:
        base.removeHandler(keep)
        logging.getLogger("ppacer.scheduler.test").removeHandler(keep)
    task_line = json.loads(formatter.format(records[0]))
    assert task_line["message"] == "hello there"
    assert (task_line["dag_id"], task_line["run_id"], task_line["task_id"]) == ("d", 9, "t")
    assert task_line["retry"] == 2
    assert task_line["attributes"] == {"rows": 3} and task_line["level"] == "WARNING"
    scheduler_line = json.loads(formatter.format(records[1]))
    assert (scheduler_line["dag_id"], scheduler_line["run_id"]) == ("d", 7)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_configure_logging_validates_format(fmt, monkeypatch):
    from ppacer.logconfig import configure_logging

    monkeypatch.setenv("PPACER_LOG_FORMAT", "yaml")
    with pytest.raises(ValueError, match="PPACER_LOG_FORMAT"):
        configure_logging()
    configure_logging(log_format=fmt)
