"""The UI's pure parts: schedules in words, durations, graph layout, Gantt bars, sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

import ppacer
from ppacer.dag.describe import describe_schedule
from ppacer.timeutils import parse_ts
from ppacer.ui.display import (
    badge,
    format_duration_s,
    progress_bar,
    time_tag,
)
from ppacer.ui.graph import NODE_H, Attempt, TaskShape, gantt_rows, layout_graph
from ppacer.ui.security import UiSecurity

T0 = datetime(2024, 3, 11, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        (None, "manual only"),
        (ppacer.FixedSchedule(T0, timedelta(seconds=10)), "every 10 seconds"),
        (ppacer.FixedSchedule(T0, timedelta(hours=1)), "every hour"),
        (ppacer.FixedSchedule(T0, timedelta(minutes=90)), "every 90 minutes"),
        (ppacer.FixedSchedule(T0, 1.5), "every 1.5 seconds"),
        (
            ppacer.CronSchedule("30 2 * * *", tz="Europe/Warsaw"),
            "every day at 02:30 (Europe/Warsaw)",
        ),
        (ppacer.CronSchedule("*/15 * * * *"), "every 15 minutes (UTC)"),
        (ppacer.CronSchedule("0 9 * * MON-FRI"), "on weekdays at 09:00 (UTC)"),
        (ppacer.CronSchedule("5 * * * *"), "every hour at :05 (UTC)"),
        (ppacer.CronSchedule("0 6 1 * *"), "on day 1 of every month at 06:00 (UTC)"),
        (ppacer.CronSchedule("@daily"), "every day at midnight (UTC)"),
        (
            ppacer.CronSchedule("*/15 9-17 * * MON-FRI"),
            "every 15 minutes from 09:00 to 17:45, on weekdays (UTC)",
        ),
    ],
)
def test_schedules_in_words(schedule, words):
    assert describe_schedule(schedule, "UTC") == words


def test_durations_and_times():
    assert [format_duration_s(s) for s in (None, 0.123, 12.34, 125, 7384, 200000)] == [
        "",
        "0.12s",
        "12.3s",
        "2m 05s",
        "2h 03m",
        "2d 7h",
    ]
    tag = time_tag("2024-03-11T12:00:00.000000UTC+00:00", ZoneInfo("Europe/Warsaw"))
    assert str(tag) == (
        '<time datetime="2024-03-11T12:00:00+00:00" title="2024-03-11 12:00:00.000 UTC">'
        "2024-03-11 13:00:00</time>"
    )


def test_time_tags_of_every_timestamp_form_agree():
    warsaw = ZoneInfo("Europe/Warsaw")
    at = datetime(2024, 3, 11, 12, 0, 0, 123456, tzinfo=UTC)
    forms = [
        "2024-03-11T12:00:00.123456UTC+00:00",  # stored
        "2024-03-11T13:00:00.123456CET+01:00",  # the original's, with a zone abbreviation
        "2024-03-11T12:00:00.123456+00:00",  # ISO 8601
        at,
        at.astimezone(warsaw),  # an aware datetime in another zone: UTC on hover all the same
    ]
    assert [parse_ts(f) for f in forms if isinstance(f, str)] == [at, at, at]
    for form in forms:
        assert str(time_tag(form, warsaw, precise=True)) == (
            '<time datetime="2024-03-11T12:00:00.123456+00:00" title="2024-03-11 12:00:00.123 UTC">'
            "2024-03-11 13:00:00.123</time>"
        )
    assert str(time_tag("2024-03-11T12:00:00.000000UTC+00:00", ZoneInfo("UTC"))) == (
        '<time datetime="2024-03-11T12:00:00+00:00" title="2024-03-11 12:00:00.000 UTC">'
        "2024-03-11 12:00:00</time>"
    )
    assert time_tag(None, warsaw) == "" and time_tag("", warsaw) == ""
    for bad in ("2024-13-11T12:00:00.000000UTC+00:00", "2024-03-11T12:00:00.000000"):
        with pytest.raises(ValueError, match="invalid timestamp"):
            time_tag(bad, warsaw)


def test_badges_and_progress_bars():
    assert str(badge("UPSTREAM_FAILED")) == (
        '<span class="badge st-upstream-failed">upstream failed</span>'
    )
    assert str(badge("<b>")) == '<span class="badge st-&lt;b&gt;">&lt;b&gt;</span>'
    bar = str(progress_bar((("SUCCESS", 0.0, 83.333, 5), ("FAILED", 83.333, 16.667, 1)), 6, 6))
    assert 'aria-label="6 of 6 tasks finished"' in bar
    assert (
        '<rect class="st-success" x="0.0" y="0" width="83.333" height="8">'
        "<title>5 SUCCESS</title></rect>"
        '<rect class="st-failed" x="83.333" y="0" width="16.667" height="8">'
        "<title>1 FAILED</title></rect></svg>"
    ) in bar


def test_graph_layers_by_depth_and_centres_short_columns():
    shapes = [
        TaskShape("root", 1, 1, ("a", "b", "c")),
        TaskShape("a", 2, 1, ("end",)),
        TaskShape("b", 2, 2, ("end",)),
        TaskShape("c", 2, 3, ("end",)),
        TaskShape("end", 3, 1, ()),
    ]
    graph = layout_graph(shapes, {"root": "SUCCESS", "b": "FAILED"})
    pos = {n.task_id: (n.x, n.y) for n in graph.nodes}
    assert pos["root"][0] < pos["a"][0] == pos["b"][0] == pos["c"][0] < pos["end"][0]
    assert pos["a"][1] < pos["b"][1] < pos["c"][1]
    assert pos["root"][1] == pos["b"][1] == pos["end"][1]  # centred on the widest column
    assert {n.task_id: n.status for n in graph.nodes}["b"] == "FAILED"
    assert {n.task_id: n.status for n in graph.nodes}["end"] == "NO_STATUS"
    assert len(graph.edges) == 6
    assert graph.height >= 3 * NODE_H and graph.width > pos["end"][0]
    assert layout_graph([], {}).nodes == []


def test_gantt_puts_retries_side_by_side_and_running_attempts_up_to_now():
    s = timedelta(seconds=1)
    attempts = [
        Attempt("a", 0, "SUCCESS", T0, T0 + 2 * s, True),
        Attempt("b", 0, "FAILED_PENDING_RETRY", T0 + 2 * s, T0 + 3 * s, True),
        Attempt("b", 1, "RUNNING", T0 + 5 * s, T0 + 6 * s, False),
    ]
    rows, start, end = gantt_rows(attempts, ["a", "b", "c"], now=T0 + 10 * s)
    assert (start, end) == (T0, T0 + 10 * s)
    assert [r.task_id for r in rows] == ["a", "b"]
    (a,) = rows[0].bars
    assert (a.x, a.width, a.queued_width) == (0.0, 200.0, 0.0)
    first, second = rows[1].bars
    assert (first.retry, first.x, first.width) == (0, 200.0, 100.0)
    assert (second.retry, second.x, second.width, second.queued_width) == (1, 500.0, 500.0, 100.0)


def test_sessions_are_signed_and_expire():
    security = UiSecurity("token", session_ttl_s=60)
    value = security.new_session(now_s=1000)

    class Req:
        def __init__(self, cookie: str) -> None:
            self.cookies = {"ppacer_session": cookie}

    assert security.is_logged_in(Req(value), now_s=1059)  # type: ignore[arg-type]
    assert not security.is_logged_in(Req(value), now_s=1061)  # type: ignore[arg-type]
    assert not UiSecurity("other").is_logged_in(Req(value), now_s=1000)  # type: ignore[arg-type]
    assert security.check_token("token") and not security.check_token("tokenx")
    assert UiSecurity(None).is_logged_in(Req(""))  # type: ignore[arg-type]
