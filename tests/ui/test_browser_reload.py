"""Hot reload seen in a real browser: ``ppacer run --reload`` and the DAG page.

A DAG file is edited while a run of it is under way: the DAG page then shows
the task's new version (and the diff to the old one), the run under way
finishes on the code it started with, and a broken edit shows its error on
every page until it is fixed. Debian's Chromium through Playwright.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ppacer
from tests.conftest import wait_for
from tests.e2e.test_hot_reload_cli import (
    finished,
    reloads,
    said,
    start_run_reloading,
    trigger_held_run,
    write_dag,
)
from tests.procs import Proc
from tests.procs import procs as procs  # a fixture

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)",
)


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            tab = browser.new_page(viewport={"width": 1440, "height": 900})
            tab.set_default_timeout(20_000)
            yield tab
        finally:
            browser.close()


def test_the_dag_page_shows_the_new_version_while_a_run_finishes_on_the_old(
    tmp_path: Path, procs: list[Proc], page: Any
) -> None:
    from playwright.sync_api import expect

    dag_file = tmp_path / "dags.py"
    proc, url = start_run_reloading(dag_file, procs)
    with ppacer.Client(url) as client:
        under_way = trigger_held_run(client)
        page.goto(f"{url}/ui/dag/flow?code=say#code")
        expect(page.locator("#code")).to_contain_text("version one")

        write_dag(dag_file, "version two")
        wait_for(lambda: reloads(proc) >= 1, 30, "the reload after the edit")
        page.reload()
        code = page.locator("#code")
        expect(code).to_contain_text("version two")
        expect(page.locator("select option", has_text="say")).to_contain_text("2 versions")
        page.screenshot(path=str(SCREENSHOTS / "hot-reload-dag-page.png"), full_page=True)

        (tmp_path / "gate").touch()
        assert wait_for(lambda: finished(client, under_way), 30, "the run under way") == "SUCCESS"
        assert said(client, under_way) == ["version one"]
        page.goto(f"{url}/ui/runs/{under_way}/logs?task=say")
        expect(page.locator("body")).to_contain_text("version one")

        dag_file.write_text("import ppacer\ndef broken(:\n", encoding="utf-8")
        page.goto(f"{url}/ui/dag/flow")
        banner = page.locator("#reload-error")
        wait_for(lambda: _shows_banner(page, url), 30, "the reload error in the UI")
        expect(banner).to_contain_text("SyntaxError")
        expect(banner).to_contain_text("dags.py, line 2")

        write_dag(dag_file, "version three")
        wait_for(lambda: reloads(proc) >= 2, 30, "the reload after the fix")
        page.goto(f"{url}/ui/dag/flow")
        expect(page.locator("#reload-error")).to_have_count(0)


def _shows_banner(page: Any, url: str) -> bool:
    page.goto(f"{url}/ui/dag/flow")
    return bool(page.locator("#reload-error").count())
