"""The run page's additions: neighbours, queue wait vs run time, executors and code
versions, a task table that sorts and filters without JavaScript, times with their zone
and "ago", the fitting graph, and why a queued attempt waits. Empty, big and failed states.
"""

from __future__ import annotations

import re
import threading

import ppacer
from ppacer.scheduler.config import Config
from tests.conftest import query, wait_for, wait_run_finished
from tests.ui.conftest import Boom, Quick, diamond
from tests.ui.test_pages import assert_no_raw_markup

ROWS = re.compile(r'<tr data-task-id="([^"]+)">')


def test_run_page_links_its_neighbours_and_splits_its_time(big_ui):
    page = big_ui.page("/ui/runs/500")
    assert 'id="prev-run" rel="prev" href="/ui/runs/499"' in page
    assert 'id="next-run" rel="next" href="/ui/runs/501"' in page
    assert "first run" in big_ui.page("/ui/runs/1") and "latest run" in big_ui.page("/ui/runs/1000")
    # Wall time = ran + queued (+ other), each attempt's executor and code version.
    timing = re.search(r'id="run-timing"[^>]*>= ran ([^ ]+) \+ queued ([^ <]+)', page)
    assert timing is not None and timing.group(1) != "0.00s" and timing.group(2) != "0.00s"
    assert re.search(
        r'<td class="executor">worker-\d <code class="small muted" title="code version', page
    )
    # Times in the zone, with the zone's name and how long ago.
    assert re.search(r"2024-03-1\d \d\d:\d\d:\d\d UTC</time> <span class=\"rel\" data-ts=", page)
    assert "days ago</span>" in page
    # Fifty tasks: the graph can be fitted into view (CSS only) or scrolled.
    assert 'id="graph-fit" class="fit-toggle"' in page
    panel = big_ui.page("/ui/runs/500/task?task=extract&fragment=panel")
    assert re.search(r'<strong class="executor">worker-\d</strong>', panel) and "queued" in panel


def test_run_task_table_sorts_and_filters_with_query_parameters(big_ui):
    everything = ROWS.findall(big_ui.page("/ui/runs/1000"))
    assert len(everything) == 50 and everything[0] == "extract" and everything[-1] == "report"
    failed = big_ui.page("/ui/runs/1000?status=FAILED")
    assert ROWS.findall(failed) == ["load_24"] and "1 of 50 shown" in failed
    # The filter form keeps what was asked, and the sort links keep the filter.
    assert '<option value="FAILED" selected>failed (1)</option>' in failed
    named = big_ui.page("/ui/runs/1000?name=LOAD_1")
    assert ROWS.findall(named) == [f"load_{i}" for i in range(10, 20)]
    assert 'value="LOAD_1"' in named
    by_name = ROWS.findall(big_ui.page("/ui/runs/1000?sort=-task"))
    assert by_name == sorted(everything, reverse=True)
    by_status = ROWS.findall(big_ui.page("/ui/runs/1000?sort=status&name=load_2"))
    assert by_status[0] == "load_24" and len(by_status) == 10
    longest = big_ui.page("/ui/runs/1000?sort=-duration")
    assert 'aria-sort="descending"><a class="sort on" href="/ui/runs/1000#tasks"' in longest
    durations = re.findall(r'<td class="num-cell">(\d+\.\d\d)s</td>\s*<td class="nowrap">', longest)
    assert [float(d) for d in durations] == sorted((float(d) for d in durations), reverse=True)
    sort_link = re.search(r'href="(/ui/runs/1000\?[^"]*sort=queued[^"]*)"', failed).group(1)
    assert "status=FAILED" in sort_link
    assert "No task matches the filter." in big_ui.page("/ui/runs/1000?name=nothing-like-it")
    big_ui.page("/ui/runs/1000?sort=bogus", status=400)


def test_a_queued_attempt_says_why_no_executor_takes_it(start_ui, db_paths):
    ui = start_ui(ppacer.Registry([diamond("stuck", Quick("m"))]), with_executor=False)
    run_id = ui.runner.client.trigger_dag_run("stuck")["runId"]
    wait_for(
        lambda: query(db_paths[0], "SELECT 1 FROM dagruntasks WHERE Status='SCHEDULED'"),
        what="extract queued",
    )
    reason = "no connected executor serves queue &#39;default&#39; (task stuck/extract)"
    page = ui.page(f"/ui/runs/{run_id}")
    assert reason in page and 'class="waiting small"' in page
    assert reason in ui.page(f"/ui/runs/{run_id}?fragment=live")
    assert reason in ui.page(f"/ui/runs/{run_id}/task?task=extract&fragment=panel")
    # Not started: no executor, no start, no queue time yet beyond now.
    assert "first run" in page and "latest run" in page  # the only run of its DAG


def test_run_page_of_a_failed_run_shows_each_attempts_executor(start_ui, db_paths):
    failing = threading.Event()
    failing.set()
    dag = diamond("flaky", Boom("boom", failing))
    ui = start_ui(ppacer.Registry([dag]), config=Config(timezone="Europe/Warsaw"))
    first = ui.runner.client.trigger_dag_run("flaky")["runId"]
    wait_run_finished(db_paths[0], "flaky")
    failing.clear()
    second = ui.runner.client.trigger_dag_run("flaky")["runId"]
    wait_run_finished(db_paths[0], "flaky", 2)
    page = ui.page(f"/ui/runs/{first}?status=FAILED")
    assert_no_raw_markup(page)
    assert ROWS.findall(page) == ["boom"]
    assert f'id="next-run" rel="next" href="/ui/runs/{second}"' in page
    # Times in the configured zone, named (CET or CEST), UTC on hover.
    assert re.search(r"\d\d:\d\d:\d\d CES?T</time>", page)
    assert re.search(r'title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC"', page)
    executor = ui.runner.executor.name  # type: ignore[union-attr]
    assert f'<td class="executor">{executor} <code' in page
    panel = ui.page(f"/ui/runs/{first}/task?task=boom&fragment=panel")
    assert f'<strong class="executor">{executor}</strong>' in panel
