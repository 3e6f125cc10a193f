"""/docs in a real browser: Swagger UI from the package's files renders and calls the API.

Uses Debian's Chromium (``/usr/bin/chromium``) through Playwright, offline: a
request to any other host than the scheduler fails the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import ppacer
from ppacer.api.routes import ROUTES

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)",
)


@ppacer.task
def noop(ctx: ppacer.TaskContext) -> None:
    ctx.logger.info("noop")


def test_swagger_ui_renders_every_operation_and_tries_one(start_local):
    from playwright.sync_api import sync_playwright

    runner = start_local(ppacer.Registry([ppacer.Dag("docs_demo", root=ppacer.Node(noop)).done()]))
    foreign: list[str] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)

            def on_request(request: Any) -> None:
                if not request.url.startswith(runner.url):
                    foreign.append(request.url)

            page.on("request", on_request)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on(
                "console",
                lambda m: (
                    errors.append(m.text) if m.type == "error" and ".map" not in m.text else None
                ),
            )
            page.goto(f"{runner.url}/docs")
            page.wait_for_selector(".opblock-summary-path")
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            assert len(paths) >= len(ROUTES)
            block = page.locator("#operations-dags-list_dags")
            block.locator(".opblock-summary").click()
            block.get_by_role("button", name="Try it out").click()
            block.get_by_role("button", name="Execute").click()
            body = block.locator(".live-responses-table tr.response .response-col_status")
            body.first.wait_for()
            assert "200" in body.first.inner_text()
            assert "docs_demo" in block.locator(".responses-wrapper").inner_text()
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "api-docs.png"), full_page=False)
        finally:
            browser.close()
    assert foreign == []
    assert errors == []
