"""Tools for testing DAGs and their schedules: a controllable clock and schedule previews.

``ManualClock`` runs weeks of schedule time in milliseconds, deterministically::

    clock = ManualClock(datetime(2024, 3, 30, tzinfo=UTC))
    runner = ppacer.LocalRunner(dags, "s.db", "l.db", port=0, clock=clock).start()
    clock.advance(timedelta(days=2))   # every run due in those two days is created
"""

from __future__ import annotations

from datetime import datetime

from ppacer.dag.schedule import NEVER, Schedule
from ppacer.timeutils import ManualClock, require_aware

__all__ = ["ManualClock", "schedule_points"]


def schedule_points(schedule: Schedule, after: datetime, until: datetime) -> list[datetime]:
    """Every point of ``schedule`` strictly after ``after`` and at or before ``until``."""
    point = require_aware(after, "after")
    until = require_aware(until, "until")
    points: list[datetime] = []
    while True:
        point = schedule.next(point, None)
        if point == NEVER or point > until:
            return points
        points.append(point)
