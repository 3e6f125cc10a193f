"""A run's wall time, split: the time some attempt ran, the time attempts only waited for an
executor, and the rest (retry delays, a run waiting for a slot).

An attempt waits from when it was scheduled until an executor took it
(``start_ts``) and runs from then until its final status. The run page shows
the split in its header; the DAG page's chart draws it per run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ppacer.scheduler.reads import AttemptView
from ppacer.timeutils import parse_ts

__all__ = ["RunTiming", "Span", "run_timing", "split_time"]


@dataclass(frozen=True, slots=True)
class RunTiming:
    """A run's wall time, split: some attempt running, attempts only queued, neither."""

    wall_s: float
    running_s: float
    queued_s: float

    @property
    def other_s(self) -> float:
        """Time with nothing running or queued (retry delays, waiting for a run slot)."""
        return max(0.0, self.wall_s - self.running_s - self.queued_s)


def _union(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _length(spans: list[tuple[datetime, datetime]]) -> float:
    return sum((end - start).total_seconds() for start, end in spans)


#: An attempt's span: queued at, taken by an executor at (None: not recorded or not yet),
#: ended at (now while it goes on), and whether it ended.
Span = tuple[datetime, datetime | None, datetime, bool]


def split_time(spans: Iterable[Span], start: datetime, end: datetime) -> RunTiming:
    """Split ``[start, end]`` by attempts' queue waits and run times (see :func:`run_timing`)."""
    running: list[tuple[datetime, datetime]] = []
    queued: list[tuple[datetime, datetime]] = []
    for scheduled, taken, finished, is_over in spans:
        if taken is not None:
            queued.append((scheduled, min(taken, finished)))
            running.append((taken, finished))
        elif is_over:
            running.append((scheduled, finished))
        else:  # still waiting for an executor
            queued.append((scheduled, finished))
    ran = _union(running)
    waited = _union(queued)
    # Queue time that overlaps run time counts as run time: something was running.
    overlap = sum(
        max(0.0, (min(e1, e2) - max(s1, s2)).total_seconds()) for s1, e1 in waited for s2, e2 in ran
    )
    wall = max(0.0, (end - start).total_seconds())
    return RunTiming(wall, min(wall, _length(ran)), max(0.0, _length(waited) - overlap))


def run_timing(
    attempts: Iterable[AttemptView], start: datetime, end: datetime, now: datetime
) -> RunTiming:
    """Split the run's ``[start, end]`` by its attempts' queue waits and run times.

    An attempt waits from when it was scheduled until an executor took it
    (``start_ts``) and runs from then until its final status (``now`` while it
    runs). An attempt without a recorded start (before ppacer recorded it) ran
    for all of its time, as its duration says.
    """
    spans = (
        (
            parse_ts(a.insert_ts),
            parse_ts(a.start_ts) if a.start_ts is not None else None,
            parse_ts(a.status_update_ts) if a.is_over else now,
            a.is_over,
        )
        for a in attempts
    )
    return split_time(spans, start, end)
