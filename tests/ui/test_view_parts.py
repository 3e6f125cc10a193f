"""The new pages' pure parts: run timing, parameters in code, code diffs, marked words,
relative times, the search box's grammar, the durations chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ppacer.dag.status import DagRunStatus, TaskStatus
from ppacer.db.dags import TaskRow
from ppacer.db.logsearch import parse_query
from ppacer.errors import InvalidInputError
from ppacer.scheduler.reads import AttemptView
from ppacer.timeutils import format_ts
from ppacer.ui.charts import DurationBar, durations_chart
from ppacer.ui.codediff import changed_fields, diff_sources
from ppacer.ui.display import relative_time, when_tag
from ppacer.ui.http import parse_when
from ppacer.ui.paramscan import params_read
from ppacer.ui.textmatch import mark_substring, mark_terms
from ppacer.ui.timing import run_timing
from ppacer.ui.view_run import TaskRow as RunTaskRow
from ppacer.ui.view_run import TaskTableQuery
from ppacer.ui.view_search import parse_search

T0 = datetime(2024, 3, 11, 12, tzinfo=UTC)
S = timedelta(seconds=1)
WARSAW = ZoneInfo("Europe/Warsaw")


def attempt(task: str, scheduled: int, started: int | None, ended: int | None) -> AttemptView:
    status = TaskStatus.SUCCESS if ended is not None else TaskStatus.RUNNING
    return AttemptView(
        task,
        0,
        status,
        format_ts(T0 + scheduled * S),
        format_ts(T0 + (ended if ended is not None else started or scheduled) * S),
        start_ts=format_ts(T0 + started * S) if started is not None else None,
    )


def test_run_time_is_split_into_running_queued_and_the_rest():
    attempts = [
        attempt("a", 0, 2, 5),  # queued 0-2, ran 2-5
        attempt("b", 1, 3, 4),  # queued 1-3 (overlaps a's run from 2), ran 3-4: inside a
        attempt("c", 8, 9, 10),  # 5-8: nothing queued or running (a retry delay)
    ]
    timing = run_timing(attempts, T0, T0 + 12 * S, T0 + 12 * S)
    assert (timing.wall_s, timing.running_s, timing.queued_s) == (12, 4, 3)
    assert timing.other_s == 5  # 5-8 and 10-12
    # A running attempt runs until now; one still queued waits until now.
    live = run_timing(
        [attempt("a", 0, 1, None), attempt("b", 0, None, None)], T0, T0 + 4 * S, T0 + 4 * S
    )
    assert (live.running_s, live.queued_s) == (3, 1)
    # Rows from before starts were recorded: all their time ran, as their duration says.
    legacy = AttemptView("x", 0, TaskStatus.SUCCESS, format_ts(T0), format_ts(T0 + 3 * S))
    assert run_timing([legacy], T0, T0 + 3 * S, T0 + 9 * S).running_s == 3


def test_the_parameters_a_task_reads_are_found_in_its_source():
    source = (
        "def execute(self, ctx):\n"
        '    name = ctx.params.get("name", "world")\n'
        '    day = ctx.params["day"]\n'
        '    if "dry_run" in ctx.params:\n'
        "        pass\n"
        '    other = params.get("plain")\n'
        "    key = 'dynamic'\n"
        "    ctx.params[key]\n"
    )
    assert params_read(source) == {"name": "'world'", "day": None, "dry_run": None, "plain": "None"}
    assert params_read("def broken(:\n") == {}


def test_a_code_diff_lists_removed_added_and_other_changed_fields():
    old = "def f(ctx):\n    a = 1\n    return a\n"
    new = "def f(ctx):\n    a = 2\n    return a\n"
    lines = diff_sources(old, new)
    assert [(d.kind, d.text) for d in lines if d.kind in ("add", "del")] == [
        ("del", "-    a = 1"),
        ("add", "+    a = 2"),
    ]
    assert lines[0].kind == "hunk" and diff_sources(old, old) == []

    def row(config: str, code: str) -> TaskRow:
        return TaskRow("d", "t", True, "ts", 1, 1, "v", "F", config, "h", old, code)

    assert changed_fields(row("{}", "a"), row('{"retries": 2}', "b")) == [
        ("config", "{}", '{"retries": 2}'),
        ("code version", "a", "b"),
    ]


def test_found_words_are_marked_and_everything_else_escaped():
    terms = parse_query('timeout "db example" conn*')
    marked = str(mark_terms("<b>Timeout</b> on db.example.com: connecting", terms))
    assert marked == (
        "&lt;b&gt;<mark>Timeout</mark>&lt;/b&gt; on <mark>db</mark>.<mark>example</mark>.com: "
        "<mark>connecting</mark>"
    )
    snippet = str(mark_terms("x" * 500 + " timeout " + "y" * 500, parse_query("timeout"), 120))
    assert snippet.startswith("…") and snippet.endswith("…") and "<mark>timeout</mark>" in snippet
    assert (
        str(mark_substring("a <Fail> FAIL", "fail"))
        == "a &lt;<mark>Fail</mark>&gt; <mark>FAIL</mark>"
    )


def test_times_say_how_long_ago_and_in_which_zone():
    assert [relative_time(s) for s in (3, 42, 185, 7300, 90000, 3 * 86400, -120)] == [
        "just now",
        "42 s ago",
        "3 min ago",
        "2 h ago",
        "1 day ago",
        "3 days ago",
        "in 2 min",
    ]
    tag = str(when_tag("2024-03-11T12:00:00.000000UTC+00:00", WARSAW, T0 + 180 * S))
    assert tag == (
        '<time datetime="2024-03-11T12:00:00+00:00" title="2024-03-11 12:00:00.000 UTC">'
        '2024-03-11 13:00:00 CET</time> <span class="rel" data-ts="2024-03-11T12:00:00+00:00">'
        "3 min ago</span>"
    )
    summer = str(when_tag(datetime(2024, 7, 1, 12, tzinfo=UTC), WARSAW, T0))
    assert "2024-07-01 14:00:00 CEST</time>" in summer and "in 112 days" in summer


def test_typed_times_are_in_the_uis_zone_unless_they_say_otherwise():
    assert parse_when("2024-03-11", WARSAW) == datetime(2024, 3, 10, 23, tzinfo=UTC)
    assert parse_when("2024-03-11", WARSAW, end_of_day=True) == datetime(
        2024, 3, 11, 23, tzinfo=UTC
    )
    assert parse_when("2024-03-11 12:30", WARSAW) == datetime(2024, 3, 11, 11, 30, tzinfo=UTC)
    assert parse_when("2024-03-11T12:30Z", WARSAW) == datetime(2024, 3, 11, 12, 30, tzinfo=UTC)
    assert parse_when("2024-03-11T12:30:00.000000UTC+00:00", WARSAW).hour == 12
    with pytest.raises(ValueError):
        parse_when("yesterday", WARSAW)


def test_the_search_box_reads_words_runs_statuses_times_and_parameters():
    q = parse_search(
        "sales tag:ETL status:failed from:2024-03-01 to:2024-03-31 "
        'name=you day=5 param:x "two words"',
        ZoneInfo("UTC"),
    )
    assert q.words == ("sales", "two words") and q.tags == ("etl",)
    assert q.statuses == (DagRunStatus.FAILED,)
    assert q.from_ts == "2024-03-01T00:00:00.000000UTC+00:00"
    assert q.to_ts == "2024-03-31T23:59:59.999999UTC+00:00"  # a date "to" is the whole day
    assert [(k, v) for k, v in q.params if k != "x"] == [("name", "you"), ("day", 5)]
    assert parse_search("#42", ZoneInfo("UTC")).run_id == 42
    assert parse_search("42", ZoneInfo("UTC")).run_id == 42
    assert parse_search("status:queued", ZoneInfo("UTC")).statuses == (
        DagRunStatus.READY_TO_SCHEDULE,
        DagRunStatus.SCHEDULED,
    )
    fields = parse_search("", ZoneInfo("UTC"), {"dag": "d", "params": "a=1 b"})
    assert fields.dag == "d" and fields.params[0] == ("a", 1) and fields.params[1][0] == "b"
    assert parse_search("", ZoneInfo("UTC")).is_empty
    for bad in ("status:bogus", "from:someday", "run:x"):
        with pytest.raises(InvalidInputError):
            parse_search(bad, ZoneInfo("UTC"))
    assert parse_search('unbalanced "quote', ZoneInfo("UTC")).words == ("unbalanced", '"quote')


def test_the_task_table_filters_by_status_and_name_and_sorts_with_none_last():
    rows = [
        RunTaskRow("extract", "SUCCESS", 0, 1, 2.0, None, 1, 1, order=0),
        RunTaskRow("load_a", "FAILED", 1, 2, 9.0, "boom", 2, 1, order=1),
        RunTaskRow("load_b", "SUCCESS", 0, 1, None, None, 2, 2, order=2),
    ]
    assert [t.task_id for t in TaskTableQuery(sort="-duration").apply(rows)] == [
        "load_b",  # no duration: last ascending, so first descending
        "load_a",
        "extract",
    ]
    assert [t.task_id for t in TaskTableQuery(sort="duration").apply(rows)] == [
        "extract",
        "load_a",
        "load_b",
    ]
    assert [t.task_id for t in TaskTableQuery(status="SUCCESS", name="LOAD").apply(rows)] == [
        "load_b"
    ]
    assert TaskTableQuery(sort="graph", name="x").params(sort="task") == {
        "name": "x",
        "sort": "task",
    }


def test_the_durations_chart_stacks_run_queue_and_other_time_per_run():
    bars = [
        DurationBar(1, "2024-03-11 12:00:00 UTC", "SUCCESS", 2.0, 1.0, 0.0),
        DurationBar(2, "2024-03-11 12:10:00 UTC", "FAILED", 4.0, 0.5, 1.5),
    ]
    svg = str(durations_chart(bars))
    assert svg.startswith('<svg class="durations"') and svg.count("<a href=") == 2
    assert '<a href="/ui/runs/2" class="st-failed">' in svg
    assert (
        "#2 · 2024-03-11 12:10:00 UTC · failed · 6.00s (ran 4.00s, queued 0.50s, other 1.50s)"
        in svg
    )
    assert svg.count('class="run"') == 2 and svg.count('class="other"') == 1
    assert "style=" not in svg  # the CSP allows no inline styles
    assert str(durations_chart([])) == ""
