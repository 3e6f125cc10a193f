"""The DAG page, search and log search in a real browser: Debian's Chromium via Playwright.

A scheduler over a realistic history (a 10-task daily warehouse DAG with a
changed task and parameters, and 1,000 runs of a 50-task DAG) shows: the grid,
where a click on a cell opens that attempt's log; the search box in the top
bar; log search, whose hit opens the log at its line; the log view's level
filter, search within, wrap toggle and download. It takes the README's
screenshots (``docs/screenshots/``) and checks the new pages fit a phone.
The browser is ``/usr/bin/chromium``; never ``playwright install``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import ppacer
from ppacer.local import LocalRunner
from tests.ui.conftest import UI, Quick
from tests.ui.seed import seed_history, seed_old_version, wide_dag
from tests.ui.test_browser import CHROMIUM, new_page

DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)",
)


class Extract(ppacer.BaseTask):
    """Pulls a day of a source (the run's ``day`` parameter)."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        day = ctx.params.get("day", "yesterday")
        ctx.logger.info("extracting %s for %s", self.task_id, day)


class Join(ppacer.BaseTask):
    """Joins the cleaned sources; ``full_refresh`` rebuilds everything."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        if ctx.params.get("full_refresh", False):
            ctx.logger.warning("full refresh requested")
        ctx.logger.info("joined %d sources for %s", 3, ctx.params["day"])


def warehouse() -> ppacer.Dag:
    """extract x3 -> clean x3 -> join -> [load, report] -> notify: ten tasks."""
    sources = ("orders", "customers", "events")
    root = ppacer.Node(Quick("start"))
    join = root.next_async_and_merge([Extract(f"extract_{s}") for s in sources], Join("join"))
    load = join.next(Quick("load_warehouse"))
    load.next(Quick("notify"))
    join.next(Quick("build_report"))
    for s in ("orders", "customers"):
        join.next(Quick(f"check_{s}"))
    return (
        ppacer.Dag(
            "warehouse_daily",
            schedule="30 2 * * *",
            tz="Europe/Warsaw",
            description="Yesterday's orders, customers and events into the warehouse",
            tags=["warehouse", "daily"],
        )
        .add_root(root)
        .done()
    )


def _latest_point(days: int) -> datetime:
    """The daily 02:30 Warsaw point ``days`` days before the latest one that passed."""
    warsaw = ZoneInfo("Europe/Warsaw")
    now = datetime.now(warsaw)
    point = datetime.combine(now.date(), time(2, 30), warsaw)
    if point > now:
        point -= timedelta(days=1)
    return (point - timedelta(days=days)).astimezone(UTC)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    """140 daily runs of ``warehouse_daily`` and 1,000 runs of the 50-task ``wide``."""
    tmp = tmp_path_factory.mktemp("browser-history")
    db, logs = tmp / "scheduler.db", tmp / "logs.db"
    daily, wide = warehouse(), wide_dag("wide", tags=["etl"], description="fifty loads")

    def params(i: int) -> dict[str, Any] | None:
        day = (_latest_point(139 - i)).date().isoformat()
        return {"day": day, "full_refresh": True} if i % 20 == 5 else {"day": day}

    seed_history(
        db,
        logs,
        daily,
        140,
        start=_latest_point(139),
        every=timedelta(days=1),
        failed_every=9,
        params=params,
        lines_per_task=4,
    )
    seed_history(
        db,
        logs,
        wide,
        1000,
        start=datetime.now(UTC) - timedelta(days=7),
        first_run_id=141,
        lines_per_task=2,
    )
    old = "def execute(self, ctx: ppacer.TaskContext) -> None:\n    ctx.logger.info('joined')\n"
    seed_old_version(db, daily, "join", old, at=datetime.now(UTC) - timedelta(days=40))
    runner = LocalRunner(
        ppacer.Registry([daily, wide]),
        str(db),
        str(logs),
        port=0,
        with_executor=False,
        stop_timeout_s=10,
    ).start()
    ui = UI(runner)
    try:
        yield ui
    finally:
        ui.http.close()
        runner.stop()


def shot(page: Any, name: str, *, full_page: bool = True) -> None:
    page.screenshot(path=str(DOCS_SHOTS / f"{name}.png"), full_page=full_page)


def test_the_grid_opens_a_cells_log(history, browser):
    page = new_page(browser)
    try:
        page.goto(history.url + "/ui/dag/warehouse_daily")
        page.wait_for_selector("table.grid a.c.st-failed")
        assert page.locator("table.grid a.rh").count() == 100
        assert page.locator("#code-diff .d-del").count() >= 1  # join changed since 40 days ago
        shot(page, "dag-page")
        # The grid opens on its newest runs, at the right end.
        wide = new_page(browser)
        wide.goto(history.url + "/ui/dag/wide")
        grid = wide.locator(".grid-wrap")
        wide.wait_for_selector("table.grid a.c")
        assert wide.locator("table.grid a.c").count() == 100 * 50
        assert grid.evaluate("e => e.scrollWidth <= e.clientWidth || e.scrollLeft > 0")
        wide.locator("#grid").screenshot(path=str(DOCS_SHOTS / "grid.png"))
        assert wide.js_errors == [], "\n".join(wide.js_errors)
        wide.close()
        # A click on a failed cell opens that attempt's log, with its error.
        cell = page.locator("table.grid a.c.st-failed").last
        href = cell.get_attribute("href")
        cell.click()
        page.wait_for_url(lambda url: href.split("?")[0] in url and "&retry=" in url)
        page.wait_for_selector("tr.lvl-error pre.msg:has-text('connection refused')")
        assert "/logs?task=" in page.url and "&retry=" in page.url
        # Back on the DAG page: older runs, then the code of a task from the graph.
        page.go_back()
        page.click("#grid-older")
        page.wait_for_selector("text=« latest")
        assert page.locator("table.grid a.rh").count() == 40
        page.click("svg.graph a:has(g[data-task-id='join'])")
        page.wait_for_url(lambda url: "code=join" in url)
        assert page.locator("#code-task").input_value() == "join"
        assert page.js_errors == [], "\n".join(page.js_errors)
    finally:
        page.close()


def test_the_search_box_finds_a_dag_and_its_failed_runs(history, browser):
    page = new_page(browser)
    try:
        page.goto(history.url + "/ui")
        page.fill("#top-search", "warehouse status:failed")
        page.press("#top-search", "Enter")
        page.wait_for_selector("#found-dags a.dag-id:text('warehouse_daily')")
        assert page.locator("#found-dags a.dag-id").count() == 1
        runs = page.locator("#found-runs table.runs tbody tr")
        assert runs.count() == 15  # every 9th of 140
        assert page.locator("#found-runs .badge.st-failed").count() == 15
        shot(page, "search")
        page.locator("#found-runs table.runs tbody tr a").first.click()
        page.wait_for_selector("#run-status .st-failed")
        assert page.js_errors == [], "\n".join(page.js_errors)
    finally:
        page.close()


def test_log_search_opens_the_found_line_in_its_log(history, browser):
    page = new_page(browser)
    try:
        page.goto(history.url + "/ui/logs/search")
        page.fill("#log-q", "timeout lock")
        page.select_option("#log-dag", "warehouse_daily")
        page.select_option("#log-search-level", "WARNING")
        page.click("text=Search logs")
        page.wait_for_selector("#log-hits a.hit mark")
        assert page.locator("#log-hits a.hit").count() == 50
        shot(page, "log-search", full_page=False)
        target = page.locator("#log-hits a.hit").first.get_attribute("href")
        line = target.split("#")[1]
        page.locator("#log-hits a.hit").first.click()
        row = page.wait_for_selector(f"tr#{line}:target")
        assert "timeout after 30s" in row.inner_text()
        box = row.bounding_box()
        assert box is not None and 0 <= box["y"] < page.viewport_size["height"]
        assert page.js_errors == [], "\n".join(page.js_errors)
    finally:
        page.close()


def test_log_view_filters_wraps_and_downloads(history, browser):
    page = new_page(browser)
    try:
        page.goto(history.url + "/ui/runs/9/logs?task=join&retry=0")
        page.wait_for_selector("tr#L1")
        everything = page.locator("#log-body tr[id^=L]").count()
        assert everything == 4
        # The level select applies at once (no button needed with the script).
        page.select_option("#log-level", "WARNING")
        page.wait_for_url("**level=WARNING**")
        levels = page.locator("#log-body tr[id^=L] td.level").all_inner_texts()
        assert levels and set(levels) <= {"WARNING", "ERROR"}
        page.select_option("#log-level", "")
        page.wait_for_url(lambda url: "level=WARNING" not in url)
        page.fill("#log-grep", "connecting")
        page.press("#log-grep", "Enter")
        page.wait_for_selector("#log-body pre.msg mark")
        shown = page.locator("#log-body tr[id^=L] pre.msg").all_inner_texts()
        assert shown and all("connecting" in s.lower() for s in shown)
        assert all("hunter2" not in s for s in shown) and "********" in shown[0]
        # Long lines wrap; unchecking the toggle keeps each on one line (CSS only).
        msg = page.locator("#log-body pre.msg").first
        assert msg.evaluate("e => getComputedStyle(e).whiteSpace") == "pre-wrap"
        page.uncheck("#log-wrap")
        assert msg.evaluate("e => getComputedStyle(e).whiteSpace") == "pre"
        page.check("#log-wrap")
        shot(page, "log-view", full_page=False)
        with page.expect_download() as got:
            page.click("#log-download")
        text = Path(got.value.path()).read_text()
        assert len(text.splitlines()) == everything and "hunter2" not in text
        assert got.value.suggested_filename == "warehouse_daily-run9-join-attempt0.log"
        assert page.js_errors == [], "\n".join(page.js_errors)
    finally:
        page.close()


def test_the_new_pages_fit_a_phone_screen(history, browser):
    page = new_page(browser)
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        for path in (
            "/ui/dag/warehouse_daily",
            "/ui/dag/wide",
            "/ui/search?q=warehouse",
            "/ui/logs/search?q=timeout",
            "/ui/runs/9/logs?task=join&grep=connecting",
            "/ui/runs/150?sort=-duration",
        ):
            page.goto(history.url + path)
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        assert page.js_errors == [], "\n".join(page.js_errors)
    finally:
        page.close()
