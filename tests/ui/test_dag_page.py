"""The DAG page, /ui/dag/{dagId}: empty, big (1,000 runs x 50 tasks) and failed states.

Grid (cells link to logs, keyset pages past the latest 100 runs), graph, the
durations chart, the schedule with its preview in two zones, parameters (read
in code, given to runs), code with the diff to an older version, trigger and
pause.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import quote, unquote

import ppacer
from tests.conftest import query, wait_run_finished
from tests.ui.conftest import XSS, Boom, Quick, diamond
from tests.ui.test_pages import ESCAPED_XSS, assert_no_raw_markup

RUN_HEADS = re.compile(r'<a class="rh st-[a-z-]+" href="/ui/runs/(\d+)"')
CELLS = re.compile(
    r'<a class="c (st-[a-z-]+)" href="/ui/runs/(\d+)/logs\?task=([^&]+)&amp;retry=(\d+)"'
)


class Greet(ppacer.BaseTask):
    """Reads parameters the way tasks do."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        name = ctx.params.get("name", "world")
        if "loud" in ctx.params:
            name = name.upper()
        ctx.logger.info("hello %s for %s", name, ctx.params["day"])


def test_dag_page_of_a_dag_without_runs(start_ui):
    dag = diamond("quiet", Greet("middle"), schedule="30 2 * * *", tz="Europe/Warsaw")
    special = ppacer.Dag("team/a b", root=ppacer.Node(Quick("only"))).done()
    ui = start_ui(ppacer.Registry([dag, special]), with_executor=False)
    page = ui.page("/ui/dag/quiet")
    assert "<title>quiet · ppacer</title>" in page
    assert "every day at 02:30 (Europe/Warsaw)" in page
    assert "No runs yet." in page and "No runs to chart." in page
    # The next runs in the scheduler's zone (UTC here: no second UTC column) and in the
    # schedule's own zone.
    assert "next runs, in UTC" in page and "in Europe/Warsaw (the schedule's zone)" in page
    assert len(re.findall(r"\d{4}-\d\d-\d\d 02:30:00\+0[12]:00</td>", page)) == 8
    assert len(re.findall(r'<td><time datetime="[^"]+T0[01]:30:00\+00:00"', page)) == 8
    # Parameters the code reads, with their defaults, before any run was given any.
    params = page[page.index('id="params"') : page.index('id="live"')]
    assert "<code>name</code>" in params and "&#39;world&#39;" in params
    assert "<code>loud</code>" in params and "<code>day</code>" in params
    assert "0 of 0" in params
    # The static graph: every task, each opening its code.
    assert page.count('<g class="node st-no-status"') == 5
    assert 'href="/ui/dag/quiet?code=middle#code"' in page
    assert '<div class="source">' in page and "ctx.params.get" in page
    assert 'id="trigger-dag" href="/ui/dags/trigger?dag_id=quiet"' in page
    assert 'id="trigger-like"' not in page  # no run to copy parameters from
    live = ui.page("/ui/dag/quiet?fragment=live")
    assert live.startswith('<div id="live" hx-get="/ui/dag/quiet?fragment=live"')
    assert "every 15s" in live and 'id="code"' not in live
    # Any DAG id works in the path.
    assert "<h1>team/a b" in ui.page("/ui/dag/" + quote("team/a b", safe=""))
    unknown = ui.page("/ui/dag/nope", status=404)
    assert "unknown DAG &#39;nope&#39;" in unknown
    assert 'href="/ui/dag/quiet"' in ui.page("/ui/dags")  # the DAGs page links here


def test_dag_page_with_a_thousand_runs_of_fifty_tasks(big_ui):
    page = big_ui.page("/ui/dag/wide")
    heads = [int(x) for x in RUN_HEADS.findall(page)]
    assert heads == list(range(901, 1001))  # the latest 100, oldest on the left
    cells = CELLS.findall(page)
    assert len(cells) == 100 * 50
    by_key = {(int(run), unquote(task)): (cls, int(retry)) for cls, run, task, retry in cells}
    assert by_key[(1000, "load_24")] == ("st-failed", 0)
    assert by_key[(1000, "report")] == ("st-upstream-failed", 0)
    assert by_key[(999, "load_24")] == ("st-success", 0)
    # A retried task's cell is its latest attempt (run 998 retried load_00).
    assert by_key[(998, "load_00")] == ("st-success", 1)
    assert "100 runs, oldest on the left" in page
    assert page.count('<th class="task">') == 50
    # The durations chart: one bar per run, drawn on the server.
    chart = page[
        page.index('<svg class="durations"') : page.index(
            "</svg>", page.index('<svg class="durations"')
        )
    ]
    assert chart.count('<a href="/ui/runs/') == 100 and 'class="st-failed"' in chart
    # Parameters given to the runs on the page (every third), with their latest values.
    assert "34 of 100" in page and "&#34;eu&#34;" in page
    # Trigger a run with the newest run's parameters (run 1000: day 999 % 30 = 9).
    assert (
        'id="trigger-like" href="/ui/dags/trigger?dag_id=wide&amp;params=%7B%22day%22%3A+9' in page
    )
    # Keyset pages: older, older again, back newer, and the latest.
    older = re.search(r'id="grid-older" rel="next" href="([^"]+)"', page).group(1)
    assert "before=" in older and 'id="grid-newer"' not in page
    second = big_ui.page(older.replace("&amp;", "&"))
    assert [int(x) for x in RUN_HEADS.findall(second)] == list(range(801, 901))
    assert "« latest" in second and "hx-get" not in second.split('id="live"')[1].split(">")[0]
    newer = re.search(r'id="grid-newer" rel="prev" href="([^"]+)"', second).group(1)
    assert [int(x) for x in RUN_HEADS.findall(big_ui.page(newer.replace("&amp;", "&")))] == list(
        range(901, 1001)
    )
    first = big_ui.page("/ui/dag/wide?before=" + quote(_exec_of(big_ui, 101)))
    assert [int(x) for x in RUN_HEADS.findall(first)] == list(range(1, 101))
    assert 'id="grid-older"' not in first
    # Code: extract changed since its older version; its diff and the other fields.
    code = big_ui.page("/ui/dag/wide?code=extract")
    assert "extract · 2 versions" in code
    diff = code[code.index('id="code-diff"') : code.index("</pre>", code.index('id="code-diff"'))]
    assert '<span class="d-del">-    pass</span>' in diff and 'class="d-add"' in diff
    assert "<td>config</td>" in code and "<td>code version</td>" in code
    assert "Changes since" in code
    assert "No changes" not in big_ui.page("/ui/dag/wide?code=load_03")
    big_ui.page("/ui/dag/wide?vs=0", status=400)
    live = big_ui.page("/ui/dag/wide?fragment=live")
    assert len(CELLS.findall(live)) == 5000 and 'id="code"' not in live


def _exec_of(ui, run_id: int) -> str:
    return ui.runner.client.get_dag_run(run_id)["execTs"]


def test_dag_page_of_a_failed_run_escapes_user_text(start_ui, db_paths):
    failing = threading.Event()
    failing.set()
    dag = diamond("broken", Boom("boom", failing), description=f"described {XSS}", tags=[XSS])
    ui = start_ui(ppacer.Registry([dag]))
    run_id = ui.runner.client.trigger_dag_run("broken", {"note": XSS, "day": 3})["runId"]
    (run,) = wait_run_finished(db_paths[0], "broken")
    assert run["Status"] == "FAILED"
    for path in ("/ui/dag/broken", "/ui/dag/broken?fragment=live", "/ui/dag/broken?code=boom"):
        assert_no_raw_markup(ui.page(path))
    page = ui.page("/ui/dag/broken")
    assert f"described {ESCAPED_XSS}" in page
    cells = {unquote(task): cls for cls, _, task, _ in CELLS.findall(page)}
    assert cells["boom"] == "st-failed" and cells["report"] == "st-upstream-failed"
    assert cells["extract"] == "st-success"
    # The graph in the latest run's colours; the run's parameters, escaped.
    assert 'class="node st-failed" data-task-id="boom"' in page
    assert f"{ESCAPED_XSS}" in page[page.index('id="params"') :]
    like = re.search(r'id="trigger-like" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    form = ui.page(like)
    assert "&#34;day&#34;: 3" in form and ESCAPED_XSS.replace("&lt;", "\\u003c") not in form
    assert f'href="/ui/runs/{run_id}"' in page
    # Pause from the DAG page, without JavaScript: back to the DAG page, marked paused.
    paused = ui.post(
        "/ui/dags/pause", {"dag_id": "broken", "paused": "1", "back": "/ui/dag/broken"}, htmx=False
    )
    assert paused.status_code == 303 and paused.headers["location"] == "/ui/dag/broken"
    assert 'id="dag-paused"' in ui.page("/ui/dag/broken")
    assert [r["IsPaused"] for r in query(db_paths[0], "SELECT IsPaused FROM dagpauses")] == [1]
    # Only this UI's pages are a place to go back to.
    away = ui.post(
        "/ui/dags/pause",
        {"dag_id": "broken", "paused": "0", "back": "https://evil.example/"},
        htmx=False,
    )
    assert away.headers["location"] == "/ui/dags"
