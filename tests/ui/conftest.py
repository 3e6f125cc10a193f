"""Fixtures of the web UI tests: a real scheduler and executor, DAGs in known states."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest

import ppacer
from ppacer.dag.status import DagRunStatus, TaskStatus
from ppacer.db import dagruns as runs_db
from ppacer.db import dagruntasks as tasks_db
from ppacer.db.engine import open_scheduler_db
from ppacer.local import LocalRunner
from ppacer.timeutils import format_ts

XSS = "<script>alert(1)</script>"


class Quick(ppacer.BaseTask):
    """Logs a line (with markup in it) and succeeds."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        ctx.logger.info("quick %s says %s", self.task_id, XSS, extra={"html": "<b>x</b>"})


class Boom(ppacer.BaseTask):
    """Fails with an error message full of markup, while ``failing`` is set."""

    def __init__(self, task_id: str, failing: threading.Event) -> None:
        super().__init__(task_id)
        self.failing = failing

    def execute(self, ctx: ppacer.TaskContext) -> None:
        ctx.logger.warning("about to fail: %s", XSS)
        if self.failing.is_set():
            raise ValueError("<img src=x onerror=alert(2)> went wrong")


class Hold(ppacer.BaseTask):
    """Runs until ``gate`` opens (so a run stays RUNNING while the test looks at it)."""

    def __init__(self, task_id: str, gate: threading.Event) -> None:
        super().__init__(task_id)
        self.gate = gate

    def execute(self, ctx: ppacer.TaskContext) -> None:
        ctx.logger.info("holding until the test lets go")
        if not self.gate.wait(60):
            raise TimeoutError("the test never opened the gate")
        ctx.logger.info("%s done", self.task_id)


def diamond(dag_id: str, middle: ppacer.Task, **kwargs: Any) -> ppacer.Dag:
    """``extract`` -> [``a``, middle, ``b``] -> ``report``."""
    root = ppacer.Node(Quick("extract"))
    root.next_async_and_merge([Quick("a"), middle, Quick("b")], Quick("report"))
    return ppacer.Dag(dag_id, **kwargs).add_root(root).done()


class UI:
    """A running scheduler + executor and an HTTP client that keeps the UI's cookies."""

    def __init__(self, runner: LocalRunner) -> None:
        self.runner = runner
        self.url = runner.url
        self.http = httpx2.Client(base_url=runner.url, timeout=20, follow_redirects=False)

    def csrf(self) -> str:
        """The CSRF token (the cookie a page load sets)."""
        if "ppacer_csrf" not in self.http.cookies:
            assert self.http.get("/ui").status_code in (200, 303)
        return str(self.http.cookies["ppacer_csrf"])

    def post(self, path: str, data: dict[str, str], htmx: bool = True) -> httpx2.Response:
        """A same-origin form POST as the browser sends it (with the CSRF token)."""
        headers = {"Origin": self.url}
        if htmx:
            headers["HX-Request"] = "true"
        return self.http.post(path, data={**data, "csrf_token": self.csrf()}, headers=headers)

    def page(self, path: str, status: int = 200) -> str:
        response = self.http.get(path)
        assert response.status_code == status, (path, response.status_code, response.text[:500])
        assert response.headers["content-type"].startswith("text/html")
        return response.text


@pytest.fixture
def start_ui(start_local: Callable[..., LocalRunner]) -> Iterator[Callable[..., UI]]:
    """Start a scheduler + executor with ``registry``; return a :class:`UI` on it."""
    made: list[UI] = []

    def start(registry: ppacer.Registry, **kwargs: Any) -> UI:
        ui = UI(start_local(registry, **kwargs))
        made.append(ui)
        return ui

    yield start
    for ui in made:
        ui.http.close()


def seed_runs(db: Path, dag: ppacer.Dag, count: int, failed_every: int = 10) -> None:
    """Write ``count`` finished runs of ``dag`` (every ``failed_every``-th FAILED) to ``db``.

    Written before the scheduler starts, as a scheduler that ran for a while
    would have left them: a big database without waiting for 1,000 real runs.
    """
    engine = open_scheduler_db(str(db))
    start = datetime(2024, 3, 11, tzinfo=UTC)
    tasks = list(dag.tasks)
    try:
        with engine.begin() as conn:
            for i in range(count):
                exec_ts = format_ts(start + timedelta(minutes=10 * i))
                failed = failed_every and i % failed_every == failed_every - 1
                status = DagRunStatus.FAILED if failed else DagRunStatus.SUCCESS
                runs_db.insert_dag_run(conn, dag.id, exec_ts, exec_ts, "test", status)
                attempts = [
                    (t, 0, TaskStatus.FAILED if failed and t == tasks[1] else TaskStatus.SUCCESS)
                    for t in tasks
                ]
                tasks_db.insert_dag_run_tasks(conn, dag.id, exec_ts, attempts, exec_ts, "test")
                if failed:
                    tasks_db.insert_task_error(
                        conn, dag.id, exec_ts, tasks[1], 0, f"RuntimeError: seeded {XSS}", exec_ts
                    )
    finally:
        engine.dispose()


def big_params(i: int) -> dict[str, Any] | None:
    """Parameters of the big state's run ``i + 1``: every third run is given some."""
    return {"day": i % 30, "region": "eu"} if i % 3 == 0 else None


@pytest.fixture(scope="session")
def big_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    """A scheduler (no executor) over 1,000 finished runs of a 50-task DAG, ``wide``: every
    10th run FAILED at ``load_24`` (``report`` upstream failed), every 7th retried
    ``load_00``, two log lines per attempt, parameters on every third run, and an older
    version of ``extract``. Shared by the tests that only read it."""
    from tests.ui.seed import seed_history, seed_old_version, wide_dag

    tmp = tmp_path_factory.mktemp("big-ui")
    db, logs = tmp / "scheduler.db", tmp / "logs.db"
    dag = wide_dag("wide", description="fifty loads in parallel", tags=["etl", "big"])
    seed_history(db, logs, dag, 1000, params=big_params, lines_per_task=2)
    seed_old_version(db, dag, "extract", "def execute(self, ctx):\n    pass\n")
    runner = LocalRunner(
        ppacer.Registry([dag]), str(db), str(logs), port=0, with_executor=False, stop_timeout_s=10
    ).start()
    ui = UI(runner)
    try:
        yield ui
    finally:
        ui.http.close()
        runner.stop()
