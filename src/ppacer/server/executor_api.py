"""The executors' side of the API: polls, reports, logs, registration, heartbeats.

The hot path of every hop: handlers here return wire dataclasses of
:mod:`ppacer.api.models` (cheaper to serialise than answer models) where an
executor calls them per attempt. :class:`ExecutorHandlers` is the base of
:class:`~ppacer.server.api.ApiHandlers`, which adds the rest of the route table.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.responses import Response

from ppacer.api import answers as a
from ppacer.api import checked as c
from ppacer.api import models as m
from ppacer.api.models import StatusReport, TaskBatch, TaskToExec
from ppacer.errors import InvalidInputError, PpacerError
from ppacer.lazy import lazy_module
from ppacer.scheduler.core import SchedulerCore
from ppacer.server.adapter import Call, Handler
from ppacer.timeutils import format_ts

if TYPE_CHECKING:
    from ppacer.api import params
    from ppacer.api import schemas as s
else:
    s = lazy_module("ppacer.api.schemas")

__all__ = ["ExecutorHandlers"]


class ExecutorHandlers:
    """The executors' handlers of one scheduler's API; :meth:`by_name` lists every handler
    of the class (and of its subclasses) by its route's name."""

    def __init__(self, scheduler: SchedulerCore) -> None:
        self.scheduler = scheduler

    def by_name(self) -> dict[str, Handler]:
        """Every handler of this class, keyed by its route's name."""
        names = [n for n in dir(type(self)) if not n.startswith("_") and n != "by_name"]
        return {name: getattr(self, name) for name in names}

    async def pop_task(self, call: Call[None, c.PopQuery, None]) -> Response | TaskToExec:
        """``GET /dag/task/pop``: one attempt, or 204."""
        q = call.query
        items = await self.scheduler.pop_tasks(q.wait_s, q.executor, 1, call.is_gone)
        return items[0] if items else Response(status_code=204)

    async def pop_tasks(self, call: Call[None, c.PopBatchQuery, None]) -> TaskBatch:
        """``GET /dag/task/pop/batch``: up to ``max`` attempts."""
        q = call.query
        return TaskBatch(await self.scheduler.pop_tasks(q.wait_s, q.executor, q.max, call.is_gone))

    async def update_task_status(self, call: Call[c.StatusUpdate, None, None]) -> None:
        """``POST /dag/task/update``: 200 with an empty body, as the original answers."""
        self.scheduler.apply_report(call.body.to_report())

    async def update_task_statuses(
        self, call: Call[c.StatusUpdates, None, None]
    ) -> a.UpdateResults:
        """``POST /dag/task/update/batch``: one result per report, in order."""
        return a.UpdateResults(self._apply_updates(call.body.updates))

    async def report_and_pop(self, call: Call[c.ReportAndPopBody, None, None]) -> m.ReportAndPop:
        """``POST /dag/task/update/pop``: the reports, then up to ``max`` attempts at once.

        What the reports made ready is held back from waiting long polls until
        this call took its share: the hop from a task to its child is one round trip.
        """
        b = call.body
        with self.scheduler.holding_dispatch():
            results = self._apply_updates(b.updates)
            # With no wait, the pop takes from the queue at once (it does not suspend).
            items = await self.scheduler.pop_tasks(0.0, b.executor, b.max) if b.max else []
        return m.ReportAndPop(results, items)

    def _apply_updates(self, updates: list[c.StatusUpdate]) -> list[tuple[int, str | None]]:
        """Apply reports in one transaction; per report its HTTP status and error."""
        reports: list[StatusReport | PpacerError] = []
        for i, update in enumerate(updates):
            try:
                reports.append(update.to_report())
            except InvalidInputError as exc:
                reports.append(InvalidInputError(f"updates.{i}.{exc}"))
        valid = [r for r in reports if isinstance(r, StatusReport)]
        outcomes = iter(self.scheduler.apply_reports(valid) if valid else [])
        results: list[tuple[int, str | None]] = []
        for r in reports:
            error = r if isinstance(r, PpacerError) else next(outcomes)
            results.append((200, None) if error is None else (error.http_status, str(error)))
        return results

    async def ship_task_logs(self, call: Call[c.LogShipment, None, None]) -> a.LogsStored:
        """``POST /dag/task/logs``: store the records (off the event loop)."""
        records, bad = [], []
        for i, record in enumerate(call.body.records):
            try:
                records.append(record.to_record())
            except InvalidInputError as exc:
                bad.append((i, f"records.{i}.{exc}"))
        result = await asyncio.to_thread(self.scheduler.store_task_logs, records)
        # Indexes of refused records are positions in ``records``: map them back.
        kept = [i for i in range(len(call.body.records)) if i not in {j for j, _ in bad}]
        rejected = bad + [(kept[j], why) for j, why in result.rejected]
        return a.LogsStored(
            result.stored, result.duplicates, [a.Rejected(i, why) for i, why in sorted(rejected)]
        )

    async def register_executor(self, call: Call[c.Registration, None, None]) -> a.Terms:
        """``POST /executor/register``: the scheduler's terms, and what the executor lacks."""
        found = self.scheduler.register_executor(call.body)
        config = self.scheduler.config
        return a.Terms(
            call.body.executor,
            self.scheduler.version,
            m.PROTOCOL_VERSION,
            config.lease_timeout_s,
            config.max_pop_wait_s,
            found.missing,
            found.mismatched,
        )

    async def executor_heartbeat(self, call: Call[c.Heartbeat, None, None]) -> a.HeartbeatAnswer:
        """``POST /executor/heartbeat``: the leases the executor no longer holds."""
        b = call.body
        lost = self.scheduler.heartbeat(b.executor, b.leases, b.running, b.capacity)
        return a.HeartbeatAnswer(lost, self.scheduler.config.lease_timeout_s)

    async def list_executors(self, call: Call[None, params.PageQuery, None]) -> s.ExecutorListOut:
        """``GET /executor/list``: executors heard from, most recently seen first."""
        everyone = self.scheduler.executors()
        now = self.scheduler.clock.now()
        page = call.query
        items = [
            s.ExecutorOut(
                name=e.name,
                firstSeen=format_ts(e.first_seen),
                lastSeen=format_ts(e.last_seen),
                lastSeenAgoS=max(0.0, (now - e.last_seen).total_seconds()),
                running=e.running,
                capacity=e.capacity,
                leases=len(e.leases),
                queues=sorted(e.capability.queues),
                labels=dict(e.capability.labels),
                registered=e.registered,
                ppacerVersion=e.ppacer_version,
            )
            for e in everyone[page.offset : page.offset + page.limit]
        ]
        return s.ExecutorListOut(
            items=items, total=len(everyone), limit=page.limit, offset=page.offset
        )
