"""The search pages and the log search API: empty, big (1,000 runs x 50 tasks, 100,000+ log
lines) and failed states.

/ui/search finds DAGs (id, tag, description) and runs (id, DAG, status, time range,
parameters) from one box; /ui/logs/search and GET /dag/run/task/logs/search find log
lines by their words, each linked to its line in its attempt's log view.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import quote

import httpx2

import ppacer
from ppacer.scheduler.config import Config
from tests.conftest import wait_run_finished
from tests.ui.conftest import XSS, Boom, Quick, diamond
from tests.ui.test_pages import ESCAPED_XSS, assert_no_raw_markup

RUN_LINKS = re.compile(r'<td><a href="/ui/runs/(\d+)">#')
HIT_LINKS = re.compile(r'<a class="hit" href="([^"]+)"')


def test_search_pages_with_nothing_to_find(start_ui):
    ui = start_ui(ppacer.Registry())
    empty = ui.page("/ui/search")
    assert 'id="search-form"' in empty and 'id="found-runs"' not in empty
    assert 'id="top-search"' in empty  # the box in the top bar, on every page
    assert "No DAG has these words" in ui.page("/ui/search?q=anything")
    assert "No run matches." in ui.page("/ui/search?q=status:failed")
    assert "No run matches." in ui.page("/ui/search?q=%2342")
    logs = ui.page("/ui/logs/search")
    assert 'id="log-search-form"' in logs and 'id="log-hits"' not in logs
    assert "No log line matches." in ui.page("/ui/logs/search?q=anything")
    bad = ui.page("/ui/logs/search?q=%22%22", status=400)
    assert "no words to search for" in bad and 'id="log-search-error"' in bad
    assert "status: one of" in ui.page("/ui/search?q=status:bogus", status=400)


def test_the_search_box_finds_dags_and_runs_among_a_thousand(big_ui):
    page = big_ui.page("/ui/search?q=fifty")  # a word of the description
    assert '<a class="dag-id" href="/ui/dag/wide">wide</a>' in page
    assert [int(x) for x in RUN_LINKS.findall(page)] == list(range(1000, 950, -1))
    assert "50+ found in 1 DAG" in page
    assert 'href="/ui/logs/search?q=fifty" id="search-logs-link"' in page
    assert "wide" in big_ui.page("/ui/search?q=tag:etl")
    assert "No DAG has these words" in big_ui.page("/ui/search?q=tag:nope")
    failed = big_ui.page("/ui/search?q=status:failed+dag:wide")
    assert [int(x) for x in RUN_LINKS.findall(failed)] == list(range(1000, 500, -10))
    assert [int(x) for x in RUN_LINKS.findall(big_ui.page("/ui/search?q=%23500"))] == [500]
    # Parameters: day 9 in runs i % 3 == 0 and i % 30 == 9 (run i + 1), newest first.
    day9 = big_ui.page("/ui/search?q=day%3D9+region%3Deu")
    assert [int(x) for x in RUN_LINKS.findall(day9)] == [i + 1 for i in range(999, -1, -30)]
    assert [int(x) for x in RUN_LINKS.findall(big_ui.page("/ui/search?params=day%3D%229%22"))] == [
        i + 1 for i in range(999, -1, -30)
    ]  # "9" as text matches 9
    assert "No run matches." in big_ui.page("/ui/search?q=day%3D31")
    # A logical-time range: a run every 10 minutes from 2024-03-11 00:00 UTC.
    window = big_ui.page("/ui/search?dag=wide&from=2024-03-11+01%3A00&to=2024-03-11+01%3A30")
    assert [int(x) for x in RUN_LINKS.findall(window)] == [10, 9, 8, 7]
    day = big_ui.page("/ui/search?q=from:2024-03-12+to:2024-03-12+status:failed")
    assert [int(x) for x in RUN_LINKS.findall(day)] == list(range(280, 140, -10))
    assert "from/to:" in big_ui.page("/ui/search?q=from:someday", status=400)


def test_log_search_finds_lines_and_links_each_to_its_place(big_ui):
    page = big_ui.page("/ui/logs/search?q=timeout+lock")
    links = HIT_LINKS.findall(page)
    assert len(links) == 50 and 'id="log-older"' in page  # a page, and more after it
    first = links[0].replace("&amp;", "&")
    # The newest such line: run 998's last task (rows are numbered as they were written).
    assert first == "/ui/runs/998/logs?task=report&retry=0#L2"
    assert "<mark>timeout</mark> after 30s waiting for <mark>lock</mark>" in page
    # The link opens the attempt's log at that line.
    view = big_ui.page(first.split("#")[0])
    assert f'<tr id="{first.split("#")[1]}" class="lvl-warning">' in view
    second = big_ui.page("/ui/logs/search?q=timeout+lock&page=2")
    assert 'rel="prev"' in second and HIT_LINKS.findall(second)[0] != links[0]
    # Filters: DAG, task, lowest level, time (in the UI's zone, UTC here).
    task = big_ui.page("/ui/logs/search?q=timeout&dag=wide&task=load_07")
    assert all("task=load_07&amp;" in link for link in HIT_LINKS.findall(task))
    errors = big_ui.page("/ui/logs/search?q=connection+refused&level=ERROR")
    assert len(HIT_LINKS.findall(errors)) == 50
    assert "lvl-info" not in errors.split('id="log-hits"')[1]
    window = big_ui.page(
        "/ui/logs/search?q=processed&from=2024-03-11+00%3A00&to=2024-03-11+00%3A05"
    )
    assert {link.split("/logs")[0] for link in HIT_LINKS.findall(window)} == {"/ui/runs/1"}
    # A password in a logged URL: found by its words, shown masked.
    masked = big_ui.page("/ui/logs/search?q=hunter2")
    assert "etl:********@db.example.com" in masked
    hits = masked.split('id="log-hits"')[1].split('<nav class="pager">')[0]
    assert "hunter2" not in hits and 'value="hunter2"' in masked  # the box, as typed
    big_ui.page("/ui/logs/search?q=x&level=LOUD", status=400)
    big_ui.page("/ui/logs/search?q=x&from=someday", status=400)


def test_log_search_in_a_failed_run_escapes_and_finds_its_errors(start_ui, db_paths):
    failing = threading.Event()
    failing.set()
    ui = start_ui(ppacer.Registry([diamond("broken", Boom("boom", failing))]))
    run_id = ui.runner.client.trigger_dag_run("broken")["runId"]
    wait_run_finished(db_paths[0], "broken")
    page = ui.page("/ui/logs/search?q=" + quote("went wrong") + "&level=ERROR")
    assert_no_raw_markup(page)
    assert "&lt;img src=x onerror=alert(2)&gt; <mark>went</mark> <mark>wrong</mark>" in page
    link = HIT_LINKS.findall(page)[0].replace("&amp;", "&")
    assert link.startswith(f"/ui/runs/{run_id}/logs?task=boom&retry=0#L")
    script = ui.page("/ui/logs/search?q=script+alert")
    assert (
        f"about to fail: {ESCAPED_XSS}".replace("script", "<mark>script</mark>").replace(
            "alert", "<mark>alert</mark>"
        )
        in script
    )
    assert XSS not in script


def test_log_search_api_needs_the_token_and_masks_it(start_ui, db_paths):
    token = "api-t0ken-123456"

    @ppacer.task
    def chatty(ctx: ppacer.TaskContext) -> None:
        ctx.logger.info("using token %s against https://u:pw@db.example.com", token)

    ui = start_ui(
        ppacer.Registry(
            [ppacer.Dag("chat", root=ppacer.Node(chatty)).done(), diamond("d", Quick("m"))]
        ),
        config=Config(api_token=token),
    )
    run_id = ui.runner.client.trigger_dag_run("chat")["runId"]
    wait_run_finished(db_paths[0], "chat")
    url = "/dag/run/task/logs/search"
    assert httpx2.get(ui.url + url, params={"q": "token"}).status_code == 401
    auth = {"Authorization": f"Bearer {token}"}
    answer = httpx2.get(ui.url + url, params={"q": "token db.example.com"}, headers=auth)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["hasMore"] is False and body["limit"] == 50 and body["offset"] == 0
    (line,) = body["items"]
    assert line["runId"] == run_id and line["dagId"] == "chat" and line["taskId"] == "chatty"
    assert line["message"] == "using token ******** against https://u:********@db.example.com"
    assert token not in answer.text and ":pw@" not in answer.text
    # The line number reads the same record from the attempt's log.
    logs = httpx2.get(
        ui.url + f"/dag/run/task/logs/{run_id}/chatty",
        params={"offset": line["line"], "limit": 1},
        headers=auth,
    ).json()
    assert logs["records"][0]["insertTs"] == line["insertTs"]
    for params, status in (
        ({"q": "!!"}, 400),
        ({"q": "x", "level": "LOUD"}, 400),
        ({"q": "x", "from": "someday"}, 400),
        ({"q": "x", "limit": 0}, 400),
        ({}, 400),
        ({"q": "token", "dagId": "d"}, 200),
        ({"q": "token", "level": "ERROR", "from": "2020-01-01T00:00:00Z"}, 200),
    ):
        got = httpx2.get(ui.url + url, params=params, headers=auth)
        assert got.status_code == status, (params, got.text)
    assert (
        httpx2.get(ui.url + url, params={"q": "token", "dagId": "d"}, headers=auth).json()["items"]
        == []
    )
