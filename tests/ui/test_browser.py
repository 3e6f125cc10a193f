"""The UI in a real browser: Debian's headless Chromium driven by Playwright.

Loads the overview, triggers a DAG from the DAGs page, watches its run turn
green without a reload, opens a failed task's logs, restarts the run, and logs
in when a token is set. Screenshots of each page go to ``artifacts/screenshots/``.
The browser is ``/usr/bin/chromium`` (``.ci/run`` installs it); never ``playwright install``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ppacer
from ppacer.scheduler.config import Config
from tests.ui.conftest import Boom, Hold, Quick, seed_runs

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
TIMEOUT_MS = 20_000
EXPECTED_STATUS = re.compile(r"^Failed to load resource: .* status of 40[01] ")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)",
)


class Step(ppacer.BaseTask):
    """Takes ``seconds`` (so the timeline has something to show) and logs a line."""

    def __init__(self, task_id: str, seconds: float) -> None:
        super().__init__(task_id)
        self.seconds = seconds

    def execute(self, ctx: ppacer.TaskContext) -> None:
        ctx.logger.info("step %s of run %s", self.task_id, ctx.run_id)
        time.sleep(self.seconds)


def pipeline(dag_id: str, load: ppacer.Task, **kwargs: Any) -> ppacer.Dag:
    """extract -> [orders, users, events] -> join -> [load, report]."""
    root = ppacer.Node(Step("extract", 0.3))
    join = root.next_async_and_merge(
        [Step("clean_orders", 0.2), Step("clean_users", 0.4), Step("clean_events", 0.1)],
        Step("join", 0.2),
    )
    join.next(load)
    join.next(Step("report", 0.3))
    return ppacer.Dag(dag_id, **kwargs).add_root(root).done()


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def new_page(browser: Any) -> Any:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.on("dialog", lambda dialog: dialog.accept())  # the confirm() of restart/clear/mark
    errors: list[str] = []  # script errors, and console errors such as CSP violations

    def on_console(message: Any) -> None:
        # 400 (bad parameters) and 401 (wrong token) are answers the tests provoke.
        if message.type == "error" and not EXPECTED_STATUS.search(message.text):
            errors.append(message.text)

    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", on_console)
    page.js_errors = errors
    return page


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def mark_document(page: Any) -> None:
    """Tag the loaded document; the tag survives only if the page is never reloaded."""
    page.evaluate("window.__ppacerNoReload = 'same document'")


def assert_not_reloaded(page: Any) -> None:
    assert page.evaluate("window.__ppacerNoReload") == "same document"


def test_trigger_watch_fail_logs_and_restart_in_a_browser(start_ui, browser):
    gate, busy_gate, failing, broken = (threading.Event() for _ in range(4))
    failing.set()
    broken.set()
    registry = ppacer.Registry(
        [
            pipeline(
                "daily_sales",
                Hold("load", gate),
                description="Sales of the day into the warehouse",
                tags=["sales"],
            ),
            pipeline("flaky_import", Boom("load", failing), tags=["imports"]),
            pipeline("hourly_metrics", Hold("load", busy_gate), schedule="0 * * * *"),
            pipeline("legacy_export", Boom("load", broken)),
        ]
    )
    ui = start_ui(registry)
    page = new_page(browser)
    try:
        # The overview loads, with the scheduler's state.
        page.goto(ui.url + "/")
        assert page.url.endswith("/ui")
        page.wait_for_selector("#scheduler-state:text('RUNNING')")

        # Trigger daily_sales from the DAGs page with JSON parameters.
        page.goto(ui.url + "/ui/dags")
        mark_document(page)
        page.click("tr[data-dag-id='daily_sales'] a.trigger")
        page.fill("#params", '{"day": "not json')
        page.click("text=Trigger run")
        page.wait_for_selector(".trigger-panel .flash-error:text('not valid JSON')")
        page.fill("#params", '{"day": "2024-03-11", "note": "<script>alert(1)</script>"}')
        shot(page, "trigger")
        page.click("text=Trigger run")
        link = page.wait_for_selector("#triggered-run")
        assert_not_reloaded(page)
        run_url = ui.url + link.get_attribute("href")

        # Watch the run: running while `load` is held, then green, without a reload.
        page.goto(run_url)
        mark_document(page)
        page.wait_for_selector("#run-status .st-running")
        page.wait_for_selector("g.node.st-running[data-task-id='load']")
        # Meanwhile, in a second tab, the held task's log tail is live.
        tail = new_page(browser)
        tail.goto(run_url + "/logs?task=load")
        tail.wait_for_selector("pre.msg:text('holding until the test lets go')")
        tail.wait_for_selector("tr#tail.tail")
        mark_document(tail)
        gate.set()
        page.wait_for_selector("#run-status .st-success")
        page.wait_for_selector("g.node.st-success[data-task-id='load']")
        assert_not_reloaded(page)
        tail.wait_for_selector("tr#tail.tail-end")
        tail.wait_for_selector("#log-status .st-success")
        tail.wait_for_selector("pre.msg:text('load done')")
        assert_not_reloaded(tail)
        assert tail.js_errors == []
        tail.close()
        assert "<script>alert(1)</script>" in page.inner_text("pre.params")

        # A failed run: open the failed task and its logs.
        flaky_id = ui.runner.client.trigger_dag_run("flaky_import")["runId"]
        page.goto(f"{ui.url}/ui/runs/{flaky_id}")
        page.wait_for_selector("#run-status .st-failed")
        page.click("table.tasks tr[data-task-id='load'] a")
        page.wait_for_selector("#task-panel[data-task-id='load'] .badge.st-failed")
        page.wait_for_selector("#task-panel .source .hl")
        page.click("#panel-attempts a:text('logs')")
        page.wait_for_selector("tr.lvl-error pre.msg:has-text('went wrong')")
        assert "<script>alert(1)</script>" in page.inner_text("tr.lvl-warning pre.msg")
        shot(page, "task_logs")

        # Restart it (the task now succeeds): it goes green without a reload.
        page.goto(f"{ui.url}/ui/runs/{flaky_id}?task=load")
        page.wait_for_selector("#restart-run")
        mark_document(page)
        failing.clear()
        page.click("#restart-run")
        page.wait_for_selector(".flash-ok:text('Run restarted')")
        page.wait_for_selector("#run-status .st-success")
        # The open task panel follows: attempt 1 succeeded next to the failed attempt 0.
        page.wait_for_selector("#panel-attempts .badge.st-success")
        assert page.locator("#panel-attempts .badge.st-failed").count() == 1
        assert_not_reloaded(page)
        shot(page, "run_detail")

        # The other pages, with a run in progress and a failed one to show.
        ui.runner.client.trigger_dag_run("hourly_metrics")
        legacy_id = ui.runner.client.trigger_dag_run("legacy_export")["runId"]
        page.goto(f"{ui.url}/ui/runs/{legacy_id}")
        page.wait_for_selector("#run-status .st-failed")
        page.goto(ui.url + "/ui")
        page.wait_for_selector("text=Last failures")
        page.wait_for_selector(f"a[href='/ui/runs/{legacy_id}']")
        page.wait_for_selector("a[href$='?task=load']:text('load')")  # hourly_metrics' load runs
        shot(page, "overview")
        page.goto(ui.url + "/ui/dags")
        shot(page, "dags")
        page.goto(ui.url + "/ui/runs")
        page.wait_for_selector("table.runs")
        shot(page, "runs")
        assert page.js_errors == [], "\n".join(page.js_errors)
    finally:
        for event in (gate, busy_gate):
            event.set()
        failing.clear()
        page.close()


def test_login_page_in_a_browser(start_ui, browser):
    ui = start_ui(
        ppacer.Registry([pipeline("guarded", Quick("load"))]), config=Config(api_token="t0ken")
    )
    page = new_page(browser)
    try:
        page.goto(ui.url + "/ui/dags")
        page.wait_for_selector("input[name=token]")
        shot(page, "login")
        page.fill("input[name=token]", "wrong")
        page.click("button:text('Log in')")
        page.wait_for_selector(".flash-error:text('Wrong token')")
        page.fill("input[name=token]", "t0ken")
        page.click("button:text('Log in')")
        page.wait_for_selector("tr[data-dag-id='guarded']")
        assert page.url.endswith("/ui/dags")
        session = [c for c in page.context.cookies() if c["name"] == "ppacer_session"]
        assert session and session[0]["httpOnly"]
        assert page.evaluate("document.cookie") == ""  # no cookie is readable from scripts
        assert page.js_errors == [], "\n".join(page.js_errors)
    finally:
        page.close()


def test_pages_fit_a_phone_screen(start_ui, browser, db_paths):
    dag = pipeline("phone", Step("load", 0))
    seed_runs(db_paths[0], dag, 30)
    ui = start_ui(ppacer.Registry([dag]), with_executor=False)
    failed_task = list(dag.tasks)[1]
    page = new_page(browser)
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        for path in (
            "/ui",
            "/ui/dags",
            "/ui/runs",
            f"/ui/runs/10?task={failed_task}",
            f"/ui/runs/10/logs?task={failed_task}",
            "/ui/dags/trigger?dag_id=phone",
        ):
            page.goto(ui.url + path)
            # Nothing widens the page: wide tables, the graph and the timeline scroll in place.
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
            brand = page.locator("header.top .brand").bounding_box()
            nav = page.locator("header.top nav").bounding_box()
            # The header's links sit beside the title or wrap below it, never over it.
            assert (
                nav["x"] >= brand["x"] + brand["width"] or nav["y"] >= brand["y"] + brand["height"]
            )
        page.goto(ui.url + f"/ui/runs/10?task={failed_task}")
        graph = page.locator(".graph-wrap")
        assert graph.evaluate("e => e.scrollWidth > e.clientWidth")  # it scrolls in its own box
        shot(page, "run_detail_phone")
        assert page.js_errors == [], "\n".join(page.js_errors)
    finally:
        page.close()
