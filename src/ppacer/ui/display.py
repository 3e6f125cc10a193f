"""How the UI shows statuses: CSS classes, status badges, a run's completion bar.

Times and durations are :mod:`ppacer.ui.times` (their names are importable
from here too); schedules in words are
:func:`ppacer.dag.describe.describe_schedule`, the wording the command line
shows too.
"""

from __future__ import annotations

import functools

from markupsafe import Markup

from ppacer.ui.times import format_duration_s, relative_time, time_tag, when_tag

__all__ = [
    "badge",
    "format_duration_s",
    "progress_bar",
    "relative_time",
    "status_class",
    "time_tag",
    "when_tag",
]


@functools.lru_cache(maxsize=64)
def status_class(status: object) -> str:
    """CSS class of a run or task status: ``st-success``, ``st-failed``, ..."""
    return "st-" + str(status).lower().replace("_", "-")


@functools.lru_cache(maxsize=64)
def badge(status: object) -> Markup:
    """A status as a coloured label: ``<span class="badge st-failed">failed</span>``.

    Cached: a page of 1,000 runs shows a handful of distinct statuses.
    """
    text = str(status)
    return Markup('<span class="badge {}">{}</span>').format(
        status_class(text), text.replace("_", " ").lower()
    )


#: A segment of a run's completion bar: status, x and width (% of the bar), task count.
BarSegment = tuple[str, float, float, int]


@functools.lru_cache(maxsize=256)
def progress_bar(segments: tuple[BarSegment, ...], done: int, task_count: int) -> Markup:
    """A run's tasks by status as a stacked SVG bar, ``done`` of ``task_count`` finished.

    Cached: on a page of runs most rows of a DAG have the same bar, so a page of
    1,000 runs builds a handful of bars instead of a thousand.
    """
    rects = Markup("").join(
        Markup(
            '<rect class="{cls}" x="{x}" y="0" width="{w}" height="8">'
            "<title>{n} {status}</title></rect>"
        ).format(cls=status_class(status), x=x, w=w, n=n, status=status)
        for status, x, w, n in segments
    )
    return Markup(
        '<svg class="bar" viewBox="0 0 100 8" preserveAspectRatio="none" role="img"'
        ' aria-label="{done} of {total} tasks finished">'
        '<rect class="bar-bg" x="0" y="0" width="100" height="8"></rect>{rects}</svg>'
    ).format(done=done, total=task_count, rects=rects)
