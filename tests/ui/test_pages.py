"""Every UI page against a real scheduler and executor: empty, running, failed and big states."""

from __future__ import annotations

import re
import threading
from urllib.parse import quote

import httpx2

import ppacer
from ppacer.scheduler.config import Config
from tests.conftest import query, wait_for, wait_run_finished
from tests.ui.conftest import XSS, Boom, Hold, Quick, diamond, seed_runs

ESCAPED_XSS = "&lt;script&gt;alert(1)&lt;/script&gt;"


def site_pages() -> list[str]:
    return [
        "/ui",
        "/ui?fragment=live",
        "/ui/dags",
        "/ui/dags?fragment=live",
        "/ui/runs",
        "/ui/runs?fragment=live",
    ]


def run_pages(run_id: int, task_id: str) -> list[str]:
    task = quote(task_id)
    return [
        f"/ui/runs/{run_id}",
        f"/ui/runs/{run_id}?fragment=live",
        f"/ui/runs/{run_id}?task={task}",
        f"/ui/runs/{run_id}/task?task={task}&fragment=panel",
        f"/ui/runs/{run_id}/task?task={task}&fragment=attempts",
        f"/ui/runs/{run_id}/task?task={task}",
        f"/ui/runs/{run_id}/logs?task={task}",
        f"/ui/runs/{run_id}/logs?task={task}&retry=0&offset=0&fragment=tail",
    ]


def assert_no_raw_markup(html: str) -> None:
    """User text never reaches the page as markup."""
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "<b>x</b>" not in html


def test_pages_render_with_no_dags(start_ui):
    ui = start_ui(ppacer.Registry())
    for path in site_pages():
        ui.page(path)
    assert "No DAGs are registered" in ui.page("/ui/dags")
    assert "No runs yet" in ui.page("/ui/runs")
    overview = ui.page("/ui")
    assert "No task is running" in overview and "No failed runs" in overview
    assert 'id="scheduler-state">RUNNING<' in overview
    ui.page("/ui/runs/1", status=404)
    ui.page("/ui/runs/1/logs?task=x", status=404)


def test_pages_render_for_a_dag_without_runs(start_ui):
    dag = diamond("quiet", Quick("middle"), schedule="0 3 * * *", tz="Europe/Warsaw")
    ui = start_ui(ppacer.Registry([dag]))
    for path in site_pages():
        ui.page(path)
    dags = ui.page("/ui/dags")
    assert "every day at 03:00 (Europe/Warsaw)" in dags
    assert "no runs yet" in dags
    # The next run in the scheduler's zone (UTC here), with UTC on hover.
    assert re.search(
        r'<time datetime="[^"]+" title="[^"]+ UTC">\d{4}-\d\d-\d\d 0[12]:00:00</time>', dags
    )


def test_pages_render_while_a_task_runs_and_stop_polling_when_done(start_ui, db_paths):
    gate = threading.Event()
    ui = start_ui(ppacer.Registry([diamond("busy", Hold("hold", gate))]))
    run_id = ui.runner.client.trigger_dag_run("busy")["runId"]
    db = db_paths[0]
    wait_for(
        lambda: query(db, "SELECT 1 FROM dagruntasks WHERE TaskId='hold' AND Status='RUNNING'"),
        what="task hold RUNNING",
    )
    try:
        for path in site_pages() + run_pages(run_id, "hold"):
            ui.page(path)
        overview = ui.page("/ui")
        assert f'href="/ui/runs/{run_id}?task=hold"' in overview
        assert "runs running" in overview
        live = ui.page(f"/ui/runs/{run_id}?fragment=live")
        assert 'hx-trigger="every 1s"' in live and "st-running" in live
        assert 'class="node st-running" data-task-id="hold"' in live
        assert "hx-swap-oob" not in live
        with_panel = ui.page(f"/ui/runs/{run_id}?fragment=live&open_task=hold")
        assert 'id="panel-attempts" hx-swap-oob="true"' in with_panel
        assert "hx-swap-oob" not in ui.page(f"/ui/runs/{run_id}?fragment=live&open_task=nope")
        logs = ui.page(f"/ui/runs/{run_id}/logs?task=hold")
        assert "holding until the test lets go" in logs
        assert 'id="tail" class="tail" hx-get=' in logs  # live tail on
        tail = ui.page(f"/ui/runs/{run_id}/logs?task=hold&retry=0&offset=1&fragment=tail")
        assert "holding until" not in tail and 'hx-trigger="every 1s"' in tail
        runs = ui.page("/ui/runs?status=running")
        assert f'href="/ui/runs/{run_id}"' in runs
    finally:
        gate.set()
    wait_run_finished(db, "busy")
    done = ui.page(f"/ui/runs/{run_id}?fragment=live")
    assert "hx-trigger" not in done.split(">", 1)[0]  # the live region stops polling
    assert "st-success" in done
    tail = ui.page(f"/ui/runs/{run_id}/logs?task=hold&retry=0&offset=1&fragment=tail")
    assert 'class="tail-end"' in tail and "hx-get" not in tail


def test_pages_render_for_a_failed_run_and_escape_user_text(start_ui, db_paths):
    failing = threading.Event()
    failing.set()
    dag = diamond("broken", Boom("boom", failing), description=f"described {XSS}")
    ui = start_ui(ppacer.Registry([dag]))
    run_id = ui.runner.client.trigger_dag_run("broken", {"note": XSS})["runId"]
    (run,) = wait_run_finished(db_paths[0], "broken")
    assert run["Status"] == "FAILED"
    for path in site_pages() + run_pages(run_id, "boom") + run_pages(run_id, "a"):
        assert_no_raw_markup(ui.page(path))
    logs = ui.page(f"/ui/runs/{run_id}/logs?task=boom")
    assert f"about to fail: {ESCAPED_XSS}" in logs
    assert "&lt;img src=x onerror=alert(2)&gt; went wrong" in logs
    assert 'class="lvl-error"' in logs and 'class="lvl-warning"' in logs
    quick_logs = ui.page(f"/ui/runs/{run_id}/logs?task=a")
    assert f"quick a says {ESCAPED_XSS}" in quick_logs
    assert "&lt;b&gt;x&lt;/b&gt;" in quick_logs  # extra attributes, as JSON, escaped
    overview = ui.page("/ui")
    assert f'href="/ui/runs/{run_id}"' in overview
    assert "ValueError: &lt;img src=x onerror=alert(2)&gt; went wrong" in overview
    page = ui.page(f"/ui/runs/{run_id}?task=boom")
    assert 'id="restart-run"' in page
    assert "&#34;note&#34;: &#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34;" in page
    assert 'class="node st-failed" data-task-id="boom"' in page
    assert 'class="node st-upstream-failed" data-task-id="report"' in page
    # The source of the task that ran, highlighted on the server.
    assert '<div class="hl">' in page and "went wrong" in page
    assert f"described {ESCAPED_XSS}" in ui.page("/ui/dags")


def test_pages_render_with_a_thousand_runs(start_ui, db_paths):
    dag = diamond("big", Quick("middle"))
    seed_runs(db_paths[0], dag, 1000)
    ui = start_ui(ppacer.Registry([dag]), with_executor=False)
    for path in site_pages():
        ui.page(path)
    rows = re.compile(r'<td><a href="/ui/runs/(\d+)">#')
    first = ui.page("/ui/runs")
    assert "1000 runs" in first and "page 1 of 20" in first
    assert [int(x) for x in rows.findall(first)] == list(range(1000, 950, -1))
    last = ui.page("/ui/runs?page=20")
    assert [int(x) for x in rows.findall(last)] == list(range(50, 0, -1))
    failed = ui.page("/ui/runs?status=failed&size=200")
    assert "100 runs" in failed and len(rows.findall(failed)) == 100
    assert len(rows.findall(ui.page("/ui/runs?dag=big&size=1000"))) == 1000
    assert "No runs match" in ui.page("/ui/runs?dag=nope")
    ui.page("/ui/runs?status=bogus", status=400)
    ui.page("/ui/runs?page=0", status=400)
    overview = ui.page("/ui")
    assert '<span class="num">900</span><span class="label">runs succeeded' in overview
    assert '<span class="num">100</span><span class="label">runs failed' in overview
    assert len(re.findall(r'class="square st-', ui.page("/ui/dags"))) == 12
    for path in run_pages(1000, "a") + run_pages(990, "a"):
        assert_no_raw_markup(ui.page(path))
    assert "No log lines" in ui.page("/ui/runs/1000/logs?task=a")


def test_root_redirects_to_the_ui_and_the_original_ui_endpoints_still_answer_json(start_ui):
    ui = start_ui(ppacer.Registry([diamond("d", Quick("m"))]))
    root = ui.http.get("/")
    assert root.status_code in (302, 303, 307) and root.headers["location"] == "/ui"
    run_id = ui.runner.client.trigger_dag_run("d")["runId"]
    assert ui.http.get("/ui/dagrun/stats").json()["dagruns"].keys() >= {"success", "running"}
    assert ui.http.get("/ui/dagrun/latest/5").json()[0]["runId"] == run_id
    assert ui.http.get(f"/ui/dagrun/{run_id}").json()["dagId"] == "d"
    assert ui.http.get(f"/ui/dagrun/task/{run_id}/extract/0").json()["taskId"] == "extract"
    page = ui.http.get("/ui")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    cookie = page.headers["set-cookie"].lower()
    assert "ppacer_csrf=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    static = ui.http.get("/ui/static/htmx.min.js")
    assert static.status_code == 200 and "htmx" in static.text[:2000]
    assert ui.http.get("/ui/static/htmx.LICENSE").text.startswith("Zero-Clause BSD")
    assert ".hl" in ui.http.get("/ui/pygments.css").text


def test_trigger_from_the_ui_validates_its_json_parameters(start_ui, db_paths):
    ui = start_ui(ppacer.Registry([diamond("t", Quick("m"))]))
    form = ui.page("/ui/dags/trigger?dag_id=t&fragment=form")
    assert 'name="params"' in form and 'name="csrf_token"' in form
    bad = ui.post("/ui/dags/trigger", {"dag_id": "t", "params": '{"a": 1,'})
    assert bad.status_code == 400 and "not valid JSON" in bad.text
    assert "{&#34;a&#34;: 1," in bad.text  # what was typed comes back, escaped
    nan = ui.post("/ui/dags/trigger", {"dag_id": "t", "params": '{"a": NaN}'})
    assert nan.status_code == 400 and "not valid JSON" in nan.text and "NaN" in nan.text
    array = ui.post("/ui/dags/trigger", {"dag_id": "t", "params": "[1, 2]"})
    assert array.status_code == 400 and "must be a JSON object" in array.text
    assert ui.post("/ui/dags/trigger", {"dag_id": "nope", "params": "{}"}).status_code == 404
    assert query(db_paths[0], "SELECT * FROM dagruns") == []
    ok = ui.post("/ui/dags/trigger", {"dag_id": "t", "params": '{"who": "' + XSS + '"}'})
    assert ok.status_code == 200, ok.text
    run_id = int(re.search(r'id="triggered-run" href="/ui/runs/(\d+)"', ok.text).group(1))
    (row,) = query(db_paths[0], "SELECT * FROM dagrunparams WHERE RunId=?", (run_id,))
    assert row["Params"] == '{"who": "<script>alert(1)</script>"}'
    (event,) = query(db_paths[0], "SELECT Actor FROM dagrunevents WHERE RunId=?", (run_id,))
    assert event["Actor"] == "ui"
    # Without htmx (a plain form post) the browser is sent to the new run.
    plain = ui.post("/ui/dags/trigger", {"dag_id": "t", "params": ""}, htmx=False)
    assert plain.status_code == 303 and plain.headers["location"].startswith("/ui/runs/")
    wait_run_finished(db_paths[0], "t", 2)


def test_trigger_page_works_without_javascript(start_ui, db_paths):
    ui = start_ui(ppacer.Registry([diamond("t", Quick("m"))]), with_executor=False)
    page = ui.page("/ui/dags/trigger?dag_id=t")
    # A whole document (trigger_page.html), not the htmx fragment.
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "<title>Trigger t · ppacer</title>" in page
    assert '<a href="/ui/dags" aria-current="page">DAGs</a>' in page
    assert '<form method="post" action="/ui/dags/trigger"' in page
    assert f'name="csrf_token" value="{ui.csrf()}"' in page
    assert '<input type="hidden" name="dag_id" value="t">' in page
    assert re.search(r'<textarea id="params" name="params"[^>]*>\{\}</textarea>', page)
    assert 'href="/ui/dags">Back to the DAGs</a>' in page
    assert "flash-error" not in page
    ui.page("/ui/dags/trigger?dag_id=nope", status=404)
    ui.page("/ui/dags/trigger", status=404)
    # A plain form post of bad JSON gets the whole page back: the error and the typed text.
    typed = '{"who": "' + XSS + '",'
    bad = ui.post("/ui/dags/trigger", {"dag_id": "t", "params": typed}, htmx=False)
    assert bad.status_code == 400
    assert bad.text.lstrip().lower().startswith("<!doctype html>")
    assert '<p class="flash flash-error" role="alert">Parameters are not valid JSON' in bad.text
    assert "{&#34;who&#34;: &#34;" + ESCAPED_XSS + "&#34;,</textarea>" in bad.text
    assert_no_raw_markup(bad.text)
    not_object = ui.post("/ui/dags/trigger", {"dag_id": "t", "params": '"x"'}, htmx=False)
    assert not_object.status_code == 400 and "<title>Trigger t · ppacer</title>" in not_object.text
    assert "must be a JSON object ({...}), not str." in not_object.text
    assert query(db_paths[0], "SELECT * FROM dagruns") == []


def test_actions_refuse_cross_site_requests(start_ui, db_paths):
    ui = start_ui(ppacer.Registry([diamond("x", Quick("m"))]))
    token = ui.csrf()
    form = {"dag_id": "x", "params": "{}"}
    cases = [
        ({"Origin": ui.url}, form),  # no CSRF token
        ({"Origin": ui.url}, {**form, "csrf_token": "wrong" * 10}),
        ({"Origin": "http://evil.example"}, {**form, "csrf_token": token}),
        ({"Origin": "null"}, {**form, "csrf_token": token}),
        ({"Sec-Fetch-Site": "cross-site"}, {**form, "csrf_token": token}),
    ]
    for headers, data in cases:
        answer = ui.http.post("/ui/dags/trigger", data=data, headers=headers)
        assert answer.status_code == 403, (headers, answer.text)
        assert "refused" in answer.text
    assert (
        ui.http.post(
            "/ui/dags/pause", data={"dag_id": "x", "paused": "1"}, headers={"Origin": ui.url}
        ).status_code
        == 403
    )
    assert query(db_paths[0], "SELECT * FROM dagruns") == []
    assert query(db_paths[0], "SELECT * FROM dagpauses") == []
    # The token in a header (as htmx sends it) works as the form field does.
    ok = ui.http.post(
        "/ui/dags/trigger",
        data=form,
        headers={"Origin": ui.url, "X-CSRF-Token": token, "HX-Request": "true"},
    )
    assert ok.status_code == 200


def test_pause_restart_clear_and_mark_from_the_ui(start_ui, db_paths):
    db = db_paths[0]
    failing = threading.Event()
    failing.set()
    ui = start_ui(ppacer.Registry([diamond("ops", Boom("boom", failing))]))
    paused = ui.post("/ui/dags/pause", {"dag_id": "ops", "paused": "1"})
    assert paused.status_code == 200 and "Paused ops." in paused.text
    assert [r["IsPaused"] for r in query(db, "SELECT IsPaused FROM dagpauses")] == [1]
    assert 'class="toggle paused"' in paused.text
    ui.post("/ui/dags/pause", {"dag_id": "ops", "paused": "0"})
    assert [r["IsPaused"] for r in query(db, "SELECT IsPaused FROM dagpauses")] == [0]

    run_id = ui.runner.client.trigger_dag_run("ops")["runId"]
    wait_run_finished(db, "ops")
    failing.clear()
    restarted = ui.post(f"/ui/runs/{run_id}/restart", {})
    assert restarted.status_code == 200 and "Run restarted (restart #1)" in restarted.text
    wait_for(lambda: query(db, "SELECT 1 FROM dagruns WHERE Status='SUCCESS'"), what="success")
    again = ui.post(f"/ui/runs/{run_id}/restart", {})
    assert again.status_code == 409 and "only a FAILED run can be restarted" in again.text

    cleared = ui.post(f"/ui/runs/{run_id}/clear", {"task_id": "b"})
    assert cleared.status_code == 200 and "Cleared 2 task(s): b, report." in cleared.text
    assert 'id="panel-attempts" hx-swap-oob="true"' in cleared.text
    wait_for(
        lambda: query(
            db, "SELECT 1 FROM dagruntasks WHERE TaskId='b' AND Retry=1 AND Status='SUCCESS'"
        ),
        what="b cleared and run again",
    )
    wait_run_finished(db, "ops")
    marked = ui.post(f"/ui/runs/{run_id}/mark", {"task_id": "report", "status": "FAILED"})
    assert marked.status_code == 200 and "Marked report FAILED." in marked.text
    assert (
        ui.post(f"/ui/runs/{run_id}/mark", {"task_id": "a", "status": "RUNNING"}).status_code == 400
    )
    wait_for(lambda: query(db, "SELECT 1 FROM dagruns WHERE Status='FAILED'"), what="failed")
    actions = [r["Action"] for r in query(db, "SELECT Action FROM dagrunevents ORDER BY InsertTs")]
    assert actions == ["TRIGGER", "RESTART", "CLEAR", "MARK_FAILED"]
    # A plain (non-htmx) post is answered with a redirect back to the run.
    plain = ui.post(
        f"/ui/runs/{run_id}/mark", {"task_id": "report", "status": "SUCCESS"}, htmx=False
    )
    assert (
        plain.status_code == 303 and plain.headers["location"] == f"/ui/runs/{run_id}?task=report"
    )


def test_login_with_the_api_token(start_ui):
    ui = start_ui(
        ppacer.Registry([diamond("secret", Quick("m"))]), config=Config(api_token="s3cret-token")
    )
    page = ui.http.get("/ui/runs?status=failed")
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=%2Fui%2Fruns%3Fstatus%3Dfailed"
    fragment = ui.http.get("/ui?fragment=live", headers={"HX-Request": "true"})
    assert fragment.status_code == 401 and fragment.headers["hx-redirect"].startswith("/ui/login")
    assert ui.http.post("/ui/dags/pause", data={"dag_id": "secret"}).status_code == 303
    login = ui.page("/ui/login?next=/ui/runs")
    assert 'type="password"' in login
    token = str(ui.http.cookies["ppacer_csrf"])
    wrong = ui.http.post(
        "/ui/login",
        data={"token": "nope", "csrf_token": token, "next": "/ui/runs"},
        headers={"Origin": ui.url},
    )
    assert wrong.status_code == 401 and "Wrong token" in wrong.text
    no_csrf = ui.http.post(
        "/ui/login", data={"token": "s3cret-token", "next": "/ui"}, headers={"Origin": ui.url}
    )
    assert no_csrf.status_code == 403
    ok = ui.http.post(
        "/ui/login",
        data={"token": "s3cret-token", "csrf_token": token, "next": "//evil.example/"},
        headers={"Origin": ui.url},
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/ui"  # no open redirect
    cookie = ok.headers["set-cookie"].lower()
    assert "ppacer_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert "Log out" in ui.page("/ui")
    session = str(ui.http.cookies["ppacer_session"])
    forged = session[:-1] + ("0" if session[-1] != "0" else "1")
    for value, status in ((session, 200), (forged, 303), ("", 303), ("1.2.3", 303)):
        with httpx2.Client(base_url=ui.url, cookies={"ppacer_session": value}) as other:
            assert other.get("/ui").status_code == status, value
    out = ui.post("/ui/logout", {}, htmx=False)
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    assert "ppacer_session=" in out.headers["set-cookie"]
