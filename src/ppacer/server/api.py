"""The API's handlers: one per route of the table, each a thin call into the scheduler.

Reads of the database run in worker threads (``asyncio.to_thread``): the event
loop, which hands out tasks and takes reports, never waits for a read.

Inputs arrive validated (:class:`~ppacer.server.adapter.Call`); each handler
calls the scheduler's public methods or its read layer and returns an answer
model of :mod:`ppacer.api.schemas` (or, on the executor's hot path, a wire
dataclass), which the adapter serialises. The original protocol's UI data is
presented by :mod:`ppacer.server.original`.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse

from ppacer.api.models import parse_exec_ts
from ppacer.dag.dag import Dag
from ppacer.dag.status import TaskStatus
from ppacer.dag.task import task_type_name
from ppacer.db.controls import BackfillRow
from ppacer.db.dagruns import DagRunRow
from ppacer.errors import InvalidInputError, NotFoundError
from ppacer.lazy import lazy_module
from ppacer.server import original
from ppacer.server.adapter import Call
from ppacer.server.executor_api import ExecutorHandlers
from ppacer.timeutils import format_ts, parse_ts

if TYPE_CHECKING:
    from ppacer.api import inputs as i
    from ppacer.api import original_ui as ui
    from ppacer.api import params
    from ppacer.api import schemas as s
else:
    # The answers' models, imported on the first call that answers with one.
    s = lazy_module("ppacer.api.schemas")
    ui = lazy_module("ppacer.api.original_ui")

__all__ = ["ApiHandlers", "run_out"]

# Runs shown with a DAG's details.
_RECENT_RUNS = 10


def run_out(run: DagRunRow) -> s.DagRunOut:
    """A run as the API's lists show it."""
    return s.DagRunOut(
        runId=run.run_id,
        dagId=run.dag_id,
        execTs=run.exec_ts,
        insertTs=run.insert_ts,
        status=run.status,
        statusUpdateTs=run.status_update_ts,
    )


def _backfill_out(
    row: BackfillRow, run_ids: list[int] | None = None, existing_runs: int | None = None
) -> s.BackfillOut:
    return s.BackfillOut.model_validate(
        {
            "backfillId": row.backfill_id,
            "dagId": row.dag_id,
            "from": row.from_ts,
            "to": row.to_ts,
            "maxActiveRuns": row.max_active_runs,
            "nextTs": row.next_ts,
            "status": row.status,
            "insertTs": row.insert_ts,
            "updateTs": row.update_ts,
            "actor": row.actor,
            "runIds": run_ids,
            "existingRuns": existing_runs,
        }
    )


def _task_status(text: str) -> TaskStatus:
    try:
        return TaskStatus(text)
    except ValueError:
        raise InvalidInputError(f"status: unknown task status {text!r}") from None


class ApiHandlers(ExecutorHandlers):
    """The handlers of one scheduler's API, by route name (:meth:`by_name`): the
    executors' (inherited), then runs, DAGs and the original's UI data."""

    # ------------------------------------------------------------------ runs

    async def state(self, _call: Call[None, None, None]) -> JSONResponse:
        """``GET /state`` (as :class:`ppacer.api.schemas.StateOut`; executors and probes ask
        often, so it is written without the model)."""
        return JSONResponse({"state": self.scheduler.state.value})

    async def trigger_dag_run(self, call: Call[i.DagRunTriggerInput, None, None]) -> s.TriggerOut:
        """``POST /dag/run/trigger``: the new run."""
        b = call.body
        at = parse_ts(parse_exec_ts(b.execTs)) if b.execTs is not None else None
        run = await self.scheduler.trigger(b.dagId, b.params, at, call.actor)
        return s.TriggerOut(runId=run.run_id, dagId=run.dag_id, execTs=run.exec_ts)

    async def restart_dag_run(self, call: Call[i.DagRunRestartInput, None, None]) -> s.RestartOut:
        """``POST /dag/run/restart``."""
        exec_ts = parse_exec_ts(call.body.execTs)
        number = self.scheduler.restart_run(call.body.dagId, parse_ts(exec_ts), call.actor)
        return s.RestartOut(dagId=call.body.dagId, execTs=exec_ts, restart=number)

    async def clear_task(self, call: Call[i.TaskActionInput, None, None]) -> s.TaskClearedOut:
        """``POST /dag/run/task/clear``: the tasks that will run again."""
        b = call.body
        at = parse_ts(parse_exec_ts(b.execTs))
        cleared = self.scheduler.clear_task(b.dagId, at, b.taskId, call.actor)
        return s.TaskClearedOut(dagId=b.dagId, execTs=format_ts(at), cleared=cleared)

    async def mark_task(self, call: Call[i.TaskMarkInput, None, None]) -> s.TaskMarkedOut:
        """``POST /dag/run/task/mark``."""
        b = call.body
        status = _task_status(b.status)
        self.scheduler.mark_task(
            b.dagId, parse_ts(parse_exec_ts(b.execTs)), b.taskId, status, call.actor
        )
        return s.TaskMarkedOut(dagId=b.dagId, taskId=b.taskId, status=str(status))

    async def list_dag_runs(
        self, call: Call[None, params.DagRunListQuery, None]
    ) -> s.DagRunListOut:
        """``GET /dag/run/list``: runs newest logical time first, by DAG and status if asked."""
        q = call.query
        rows, total = await asyncio.to_thread(
            self.scheduler.reads.runs_page,
            dag_id=q.dagId,
            statuses=[q.status] if q.status is not None else [],
            limit=q.limit,
            offset=q.offset,
        )
        return s.DagRunListOut(
            items=[run_out(r) for r in rows], total=total, limit=q.limit, offset=q.offset
        )

    async def get_dag_run(self, call: Call[None, None, params.RunIdPath]) -> s.DagRunDetailsOut:
        """``GET /dag/run/details/{runId}``: the run, its parameters and every attempt."""
        view = await asyncio.to_thread(self.scheduler.reads.run_view, call.path.runId)
        waiting = self.scheduler.waiting_reasons(view.run.dag_id, view.run.exec_ts)
        tasks = [
            s.TaskAttemptOut(
                taskId=a.task_id,
                retry=a.retry,
                status=str(a.status),
                insertTs=a.insert_ts,
                statusUpdateTs=a.status_update_ts,
                error=a.error,
                startTs=a.start_ts,
                executor=a.executor,
                codeVersion=a.code_version,
                waitingReason=waiting.get((a.task_id, a.retry)),
            )
            for a in view.attempts
        ]
        order = {t: i for i, t in enumerate(view.dag.tasks)} if view.dag is not None else {}
        tasks += [
            s.TaskAttemptOut(
                taskId=task_id,
                retry=0,
                status=str(TaskStatus.NO_STATUS),
                insertTs=None,
                statusUpdateTs=None,
                error=None,
            )
            for task_id in view.not_started
        ]
        tasks.sort(key=lambda t: (order.get(t.taskId, len(order)), t.retry))
        return s.DagRunDetailsOut(**run_out(view.run).model_dump(), params=view.params, tasks=tasks)

    async def get_task_logs(
        self, call: Call[None, params.TaskLogsQuery, params.TaskLogsPath]
    ) -> s.TaskLogsOut:
        """``GET /dag/run/task/logs/{runId}/{taskId}``: one attempt's log records, paged."""
        q, where = call.query, call.path
        page = await asyncio.to_thread(
            self.scheduler.reads.log_page,
            where.runId,
            where.taskId,
            q.retry,
            offset=q.offset,
            limit=q.limit,
        )
        return s.TaskLogsOut(
            runId=page.run.run_id,
            dagId=page.run.dag_id,
            execTs=page.run.exec_ts,
            taskId=page.task_id,
            retry=page.retry,
            status=str(page.status),
            finished=page.finished,
            runStatus=page.run.status,
            latestRetry=page.latest_retry,
            offset=page.offset,
            nextOffset=page.next_offset,
            records=[
                s.LogRecordOut(
                    insertTs=r.insert_ts, level=r.level, message=r.message, attributes=r.attributes
                )
                for r in page.lines
            ],
        )

    async def search_task_logs(
        self, call: Call[None, params.LogSearchQuery, None]
    ) -> s.LogSearchOut:
        """``GET /dag/run/task/logs/search``: log lines by their words, newest first."""
        q = call.query
        token = self.scheduler.config.api_token
        found = await asyncio.to_thread(
            self.scheduler.reads.search_logs,
            q.q,
            dag_id=q.dagId,
            task_id=q.taskId,
            min_level=q.level,
            from_ts=parse_exec_ts(q.from_, "from") if q.from_ is not None else None,
            to_ts=parse_exec_ts(q.to, "to") if q.to is not None else None,
            limit=q.limit,
            offset=q.offset,
            secrets=[token] if token else [],
        )
        return s.LogSearchOut(
            items=[
                s.FoundLogLineOut(
                    runId=f.run_id,
                    dagId=f.dag_id,
                    execTs=f.exec_ts,
                    taskId=f.task_id,
                    retry=f.retry,
                    line=f.line,
                    insertTs=f.insert_ts,
                    level=f.level,
                    message=f.message,
                )
                for f in found.lines
            ],
            limit=q.limit,
            offset=q.offset,
            hasMore=found.has_more,
        )

    async def dag_run_history(
        self, call: Call[None, params.PageQuery, params.RunIdPath]
    ) -> s.RunEventListOut:
        """``GET /dag/run/history/{runId}``: a page of who did what, oldest first."""
        events = await asyncio.to_thread(self.scheduler.reads.run_events, call.path.runId)
        page = call.query
        return s.RunEventListOut(
            items=[
                s.RunEventOut(
                    insertTs=e.insert_ts,
                    action=e.action,
                    taskId=e.task_id,
                    actor=e.actor,
                    detail=e.detail,
                )
                for e in events[page.offset : page.offset + page.limit]
            ],
            total=len(events),
            limit=page.limit,
            offset=page.offset,
        )

    # ------------------------------------------------------------------ DAGs

    def _dag(self, dag_id: str) -> Dag:
        dag = self.scheduler.registry.get(dag_id)
        if dag is None:
            raise NotFoundError(f"dagId: unknown DAG {dag_id!r}")
        return dag

    def _summary(self, dag: Dag, paused: set[str], last: DagRunRow | None) -> dict[str, Any]:
        # A paused DAG has no next run: it resumes by its catch-up policy when unpaused.
        points = [] if dag.id in paused else self.scheduler.schedule_preview(dag.id, 1)
        return {
            "dagId": dag.id,
            "description": dag.description,
            "schedule": str(dag.schedule) if dag.schedule is not None else None,
            "paused": dag.id in paused,
            "tags": list(dag.attributes.tags),
            "catchUp": dag.attributes.catch_up,
            "maxActiveRuns": dag.attributes.max_active_runs,
            "taskNum": len(dag.tasks),
            "nextScheduleTs": points[0]["utc"] if points else None,
            "lastRun": run_out(last) if last is not None else None,
            "timezone": self.scheduler.config.timezone,
        }

    async def list_dags(self, call: Call[None, params.PageQuery, None]) -> s.DagListOut:
        """``GET /dag/list``: DAGs by id, with pause state, next point and latest run."""
        page = call.query
        ids = sorted(self.scheduler.registry)
        chosen = ids[page.offset : page.offset + page.limit]
        reads = self.scheduler.reads
        paused = await asyncio.to_thread(
            reads.paused_dags,
        )
        latest = await asyncio.to_thread(reads.recent_runs, chosen, 1)
        items = [
            s.DagSummaryOut.model_validate(
                self._summary(self.scheduler.registry[d], paused, next(iter(latest[d]), None))
            )
            for d in chosen
        ]
        return s.DagListOut(items=items, total=len(ids), limit=page.limit, offset=page.offset)

    async def get_dag(self, call: Call[None, None, params.DagIdPath]) -> s.DagDetailsOut:
        """``GET /dag/details/{dagId}``: the DAG with its tasks and latest runs."""
        dag = self._dag(call.path.dagId)
        reads = self.scheduler.reads
        paused = await asyncio.to_thread(
            reads.paused_dags,
        )
        recent = (await asyncio.to_thread(reads.recent_runs, [dag.id], _RECENT_RUNS))[dag.id]
        tasks = [
            s.TaskInfoOut(
                taskId=info.task_id,
                taskType=task_type_name(info.task),
                parents=list(info.parents),
                children=list(info.children),
                depth=info.depth,
                width=info.width,
                triggerRule=str(info.trigger_rule),
                config=json.loads(info.config.to_json()),
            )
            for info in dag.tasks.values()
        ]
        details = self._summary(dag, paused, next(iter(recent), None))
        return s.DagDetailsOut.model_validate(
            {**details, "tasks": tasks, "recentRuns": [run_out(r) for r in recent]}
        )

    async def pause_dag(self, call: Call[i.DagInput, None, None]) -> s.DagPausedOut:
        """``POST /dag/pause``."""
        self.scheduler.set_paused(call.body.dagId, True, call.actor)
        return s.DagPausedOut(dagId=call.body.dagId, paused=True)

    async def unpause_dag(self, call: Call[i.DagInput, None, None]) -> s.DagPausedOut:
        """``POST /dag/unpause``."""
        self.scheduler.set_paused(call.body.dagId, False, call.actor)
        return s.DagPausedOut(dagId=call.body.dagId, paused=False)

    async def schedule_preview(
        self, call: Call[None, params.SchedulePreviewQuery, params.DagIdPath]
    ) -> s.SchedulePreviewOut:
        """``GET /dag/schedule/{dagId}``: next points in the DAG's zone and in UTC."""
        q = call.query
        after = parse_ts(parse_exec_ts(q.after, "after")) if q.after else None
        points = self.scheduler.schedule_preview(call.path.dagId, q.n, after)
        return s.SchedulePreviewOut.model_validate({"dagId": call.path.dagId, "points": points})

    async def backfill_dag(self, call: Call[i.BackfillInput, None, None]) -> s.BackfillOut:
        """``POST /dag/backfill``: the backfill, created, and how many of its points had a run."""
        b = call.body
        row, existing = self.scheduler.create_backfill(
            b.dagId,
            parse_ts(parse_exec_ts(b.from_, "from")),
            parse_ts(parse_exec_ts(b.to, "to")),
            b.maxActiveRuns,
            call.actor,
        )
        return _backfill_out(row, existing_runs=existing)

    async def get_backfill(self, call: Call[None, None, params.BackfillIdPath]) -> s.BackfillOut:
        """``GET /dag/backfill/{backfillId}``: its progress and the runs it created."""
        row, run_ids = await asyncio.to_thread(self.scheduler.reads.backfill, call.path.backfillId)
        return _backfill_out(row, run_ids)

    # ------------------------------------------------------------------ the original's UI data

    async def ui_dagrun_stats(self, _call: Call[None, None, None]) -> ui.UiStatsOut:
        """``GET /ui/dagrun/stats``."""
        return await asyncio.to_thread(original.dagrun_stats, self.scheduler)

    async def ui_dagrun_latest(
        self, call: Call[None, None, params.LatestRunsPath]
    ) -> list[ui.UiLatestRunOut]:
        """``GET /ui/dagrun/latest/{n}``."""
        return await asyncio.to_thread(original.dagrun_latest, self.scheduler, call.path.n)

    async def ui_dagrun_details(
        self, call: Call[None, None, params.RunIdPath]
    ) -> ui.UiRunDetailsOut:
        """``GET /ui/dagrun/{runId}``."""
        return await asyncio.to_thread(original.dagrun_details, self.scheduler, call.path.runId)

    async def ui_dagrun_task_details(
        self, call: Call[None, None, params.TaskAttemptPath]
    ) -> ui.UiTaskDetailsOut:
        """``GET /ui/dagrun/task/{runId}/{taskId}/{retry}``."""
        p = call.path
        return await asyncio.to_thread(
            original.dagrun_task_details, self.scheduler, p.runId, p.taskId, p.retry
        )
