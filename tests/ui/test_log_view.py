"""The log view's additions: numbered lines with anchors, a level filter, search within,
download as plain text, the wrap toggle, and secrets masked (URL passwords, the token)."""

from __future__ import annotations

import re

import ppacer
from ppacer.scheduler.config import Config
from tests.conftest import wait_run_finished
from tests.ui.conftest import UI
from tests.ui.test_pages import assert_no_raw_markup

TOKEN = "s3cret-token-for-tests"
LINE_IDS = re.compile(r'<tr id="L(\d+)" class="lvl-([a-z]+)">')


def test_log_view_numbers_filters_and_downloads_an_attempts_lines(big_ui):
    base = "/ui/runs/1000/logs?task=load_24&retry=0"
    page = big_ui.page(base)
    # Two lines and the failure's ERROR, numbered from 1, each an anchor.
    assert LINE_IDS.findall(page) == [("1", "info"), ("2", "info"), ("3", "error")]
    assert '<a href="#L3" title="link to this line">3</a>' in page
    assert 'id="log-wrap" class="wrap-toggle" checked' in page  # the wrap toggle (CSS only)
    # Lowest level: ERROR keeps line 3 only, numbered as before.
    errors = big_ui.page(base + "&level=ERROR")
    assert LINE_IDS.findall(errors) == [("3", "error")]
    assert "1 of 3 lines match." in errors and '<option value="ERROR" selected>' in errors
    # Search within (run 999 logged a URL): its password never reaches the page.
    found = big_ui.page("/ui/runs/999/logs?task=load_24&retry=0&grep=CONNECTING")
    assert LINE_IDS.findall(found) == [("2", "info")]
    assert "<mark>connecting</mark> to postgresql://etl:********@db.example.com" in found
    assert "hunter2" not in found
    assert "No line matches the filter." in big_ui.page(base + "&grep=nothing-like-it")
    big_ui.page(base + "&level=LOUD", status=400)
    # The tail fragment keeps the filters.
    tail = big_ui.page(base + "&level=ERROR&offset=0&fragment=tail")
    assert LINE_IDS.findall(tail) == [("3", "error")] and 'class="tail-end"' in tail
    # Download: every line as text, secrets masked.
    got = big_ui.http.get("/ui/runs/1000/logs/download?task=load_24&retry=0")
    assert got.status_code == 200 and got.headers["content-type"] == "text/plain; charset=utf-8"
    assert got.headers["content-disposition"] == (
        'attachment; filename="wide-run1000-load_24-attempt0.log"'
    )
    lines = got.text.splitlines()
    assert len(lines) == 3 and "hunter2" not in got.text
    assert re.match(r"2024-03-\d\d \d\d:\d\d:\d\d\.\d{6} UTC INFO     load_24: processed", lines[0])
    assert lines[2].split(" UTC ")[1].startswith("ERROR    load_24 failed: connection refused")
    assert got.headers["x-frame-options"] == "DENY"
    big_ui.page("/ui/runs/1000/logs?task=nope", status=404)
    assert big_ui.http.get("/ui/runs/1000/logs/download?task=nope").status_code == 404


def _log_in(ui: UI, token: str) -> None:
    answer = ui.http.post(
        "/ui/login",
        data={"token": token, "csrf_token": ui.csrf(), "next": "/ui"},
        headers={"Origin": ui.url},
    )
    assert answer.status_code == 303


@ppacer.task
def leaky(ctx: ppacer.TaskContext) -> None:
    """Logs the scheduler's token and a URL with a password (by mistake)."""
    ctx.logger.info("calling the API with token %s", TOKEN)
    ctx.logger.warning("fallback to https://bot:pa55word@hooks.example.com/x <b>now</b>")


def test_logs_never_show_the_token_or_a_url_password(start_ui, db_paths):
    dag = ppacer.Dag("leaks", root=ppacer.Node(leaky)).done()
    ui = start_ui(ppacer.Registry([dag]), config=Config(api_token=TOKEN))
    run_id = ui.runner.client.trigger_dag_run("leaks")["runId"]
    wait_run_finished(db_paths[0], "leaks")
    _log_in(ui, TOKEN)
    page = ui.page(f"/ui/runs/{run_id}/logs?task=leaky")
    assert_no_raw_markup(page)
    assert "calling the API with token ********" in page
    assert "https://bot:********@hooks.example.com/x &lt;b&gt;now&lt;/b&gt;" in page
    assert TOKEN not in page and "pa55word" not in page
    text = ui.http.get(f"/ui/runs/{run_id}/logs/download?task=leaky").text
    assert TOKEN not in text and "pa55word" not in text and "token ********" in text
    hits = ui.page("/ui/logs/search?q=token")
    assert "<mark>token</mark> ********" in hits and TOKEN not in hits
