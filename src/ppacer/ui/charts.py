"""The DAG page's chart of run durations: an SVG drawn on the server, no charting script.

One stacked bar per run, oldest on the left: the time some task ran (in the
run's status colour), the time its tasks only waited for an executor (pale),
and the rest of its wall time (grey: retry delays, waiting for a run slot).
Each bar links to its run and says its numbers on hover. Colours come from
CSS classes (the page's CSP allows no inline styles).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from ppacer.ui.display import status_class
from ppacer.ui.times import format_duration_s

__all__ = ["DurationBar", "durations_chart"]

WIDTH = 960
HEIGHT = 190
LEFT = 64
BOTTOM = 20
TOP = 8


@dataclass(frozen=True, slots=True)
class DurationBar:
    """One run in the chart."""

    run_id: int
    # Its logical time as shown on hover.
    label: str
    status: str
    running_s: float
    queued_s: float
    other_s: float

    @property
    def wall_s(self) -> float:
        """The run's whole duration."""
        return self.running_s + self.queued_s + self.other_s


def _rect(cls: str, x: float, y: float, w: float, h: float) -> str:
    if h <= 0:
        return ""
    return f'<rect class="{cls}" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}"></rect>'


def durations_chart(bars: Sequence[DurationBar]) -> Markup:
    """The chart of ``bars`` (oldest first); empty markup when there is none.

    Built from strings (numbers, fixed class names, the escaped hover text): a
    hundred bars with ``Markup.format`` each cost more than the page's queries.
    """
    if not bars:
        return Markup("")
    top_s = max(max(b.wall_s for b in bars), 0.001)
    plot_h = HEIGHT - TOP - BOTTOM
    step = (WIDTH - LEFT - 8) / max(len(bars), 1)
    width = max(1.0, step * 0.72)

    def y(seconds: float) -> float:
        return TOP + plot_h - seconds / top_s * plot_h

    parts = [
        f'<svg class="durations" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="durations of the latest {len(bars)} runs">'
    ]
    for fraction in (0.0, 0.5, 1.0):
        at = y(top_s * fraction)
        label = escape(format_duration_s(top_s * fraction))
        parts.append(
            f'<line class="tick" x1="{LEFT}" y1="{at:.1f}" x2="{WIDTH - 4}" y2="{at:.1f}"></line>'
            f'<text class="tick-label" x="{LEFT - 6}" y="{at + 4:.1f}">{label}</text>'
        )
    base = TOP + plot_h
    for i, bar in enumerate(bars):
        x = LEFT + i * step + (step - width) / 2
        run_h = bar.running_s / top_s * plot_h
        queue_h = bar.queued_s / top_s * plot_h
        other_h = bar.other_s / top_s * plot_h
        other = f", other {format_duration_s(bar.other_s)}" if bar.other_s >= 0.01 else ""
        title = escape(
            f"#{bar.run_id} · {bar.label} · {bar.status.lower()} · "
            f"{format_duration_s(bar.wall_s)} (ran {format_duration_s(bar.running_s)}, "
            f"queued {format_duration_s(bar.queued_s)}{other})"
        )
        parts += (
            f'<a href="/ui/runs/{bar.run_id}" class="{status_class(bar.status)}">'
            f"<title>{title}</title>",
            # A transparent full-height target: short bars stay easy to hover and click.
            _rect("hit", x, TOP, width, plot_h),
            _rect("run", x, base - run_h, width, run_h),
            _rect("queued", x, base - run_h - queue_h, width, queue_h),
            _rect("other", x, base - run_h - queue_h - other_h, width, other_h),
            "</a>",
        )
    parts.append("</svg>")
    return Markup("".join(parts))
