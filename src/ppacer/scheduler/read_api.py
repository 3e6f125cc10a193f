"""The API's read endpoints: DAG and run lists and details, task logs, executors.

Lists are paginated with ``limit`` and ``offset`` and answer
``{"items", "total", "limit", "offset"}``. Parameters are validated by the
models of :mod:`ppacer.api.schemas` (the ones the OpenAPI document shows) and
answers are built with its ``*Out`` models. Handlers run on the scheduler's
event loop, like the other endpoints; every query is bounded by an index.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ppacer.api.models import describe_validation_error, validation_detail
from ppacer.api.schemas import (
    DagDetailsOut,
    DagIdPath,
    DagListOut,
    DagRunDetailsOut,
    DagRunListOut,
    DagRunListQuery,
    DagRunOut,
    DagSummaryOut,
    ExecutorListOut,
    ExecutorOut,
    LogRecordOut,
    PageQuery,
    RunIdPath,
    TaskAttemptOut,
    TaskInfoOut,
    TaskLogsOut,
    TaskLogsPath,
    TaskLogsQuery,
)
from ppacer.dag.dag import Dag
from ppacer.dag.status import TaskStatus
from ppacer.dag.task import task_type_name
from ppacer.db import controls as controls_db
from ppacer.db import dagruns as runs_db
from ppacer.db import dagruntasks as tasks_db
from ppacer.db.dagruns import DagRunRow
from ppacer.db.queries import read_task_attempts
from ppacer.db.tasklogs import read_task_log_lines
from ppacer.db.ui_queries import read_recent_runs_by_dag, read_runs_page
from ppacer.errors import InvalidInputError, NotFoundError
from ppacer.timeutils import format_ts

if TYPE_CHECKING:
    from ppacer.scheduler.server import Scheduler

__all__ = ["parse_params", "read_handlers"]

Handler = Callable[[Request], Awaitable[Response]]
_P = TypeVar("_P", bound=BaseModel)
# Runs shown with a DAG's details.
_RECENT_RUNS = 10


def parse_params(request: Request, model: type[_P], *, path: bool = False) -> _P:
    """Validate the query (or path) parameters with ``model``; 400 naming the bad one."""
    data = request.path_params if path else dict(request.query_params)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(describe_validation_error(exc), validation_detail(exc)) from None


def _json(model: BaseModel) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json", by_alias=True))


def _run_out(run: DagRunRow) -> DagRunOut:
    return DagRunOut(
        runId=run.run_id,
        dagId=run.dag_id,
        execTs=run.exec_ts,
        insertTs=run.insert_ts,
        status=run.status,
        statusUpdateTs=run.status_update_ts,
    )


class ReadApi:
    """Handlers of the read endpoints of one scheduler."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def handlers(self) -> dict[str, Handler]:
        """Handlers by route name (``ppacer.api.routes``)."""
        return {
            "list_dags": self.list_dags,
            "get_dag": self.get_dag,
            "list_dag_runs": self.list_dag_runs,
            "get_dag_run": self.get_dag_run,
            "get_task_logs": self.get_task_logs,
            "list_executors": self.list_executors,
        }

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
            "lastRun": _run_out(last) if last is not None else None,
        }

    async def list_dags(self, request: Request) -> Response:
        """``GET /dag/list``: DAGs by id, with pause state, next point and latest run."""
        page = parse_params(request, PageQuery)
        ids = sorted(self.scheduler.registry)
        chosen = ids[page.offset : page.offset + page.limit]
        with self.scheduler.engine.connect() as conn:
            paused = controls_db.read_paused_dags(conn)
            latest = read_recent_runs_by_dag(conn, chosen, 1)
        items = [
            DagSummaryOut.model_validate(
                self._summary(self.scheduler.registry[d], paused, next(iter(latest[d]), None))
            )
            for d in chosen
        ]
        return _json(DagListOut(items=items, total=len(ids), limit=page.limit, offset=page.offset))

    async def get_dag(self, request: Request) -> Response:
        """``GET /dag/details/{dagId}``: the DAG with its tasks and latest runs."""
        dag = self._dag(parse_params(request, DagIdPath, path=True).dagId)
        with self.scheduler.engine.connect() as conn:
            paused = controls_db.read_paused_dags(conn)
            recent = read_recent_runs_by_dag(conn, [dag.id], _RECENT_RUNS)[dag.id]
        tasks = [
            TaskInfoOut(
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
        return _json(
            DagDetailsOut.model_validate(
                {**details, "tasks": tasks, "recentRuns": [_run_out(r) for r in recent]}
            )
        )

    async def list_dag_runs(self, request: Request) -> Response:
        """``GET /dag/run/list``: runs newest first, by DAG and status if asked."""
        query = parse_params(request, DagRunListQuery)
        statuses = [query.status] if query.status is not None else []
        with self.scheduler.engine.connect() as conn:
            rows, total = read_runs_page(
                conn,
                dag_id=query.dagId,
                statuses=statuses,
                limit=query.limit,
                offset=query.offset,
            )
        return _json(
            DagRunListOut(
                items=[_run_out(r) for r in rows],
                total=total,
                limit=query.limit,
                offset=query.offset,
            )
        )

    def _run(self, run_id: int) -> DagRunRow:
        with self.scheduler.engine.connect() as conn:
            run = runs_db.read_dag_run(conn, run_id)
        if run is None:
            raise NotFoundError(f"runId: no DAG run {run_id}")
        return run

    async def get_dag_run(self, request: Request) -> Response:
        """``GET /dag/run/details/{runId}``: the run, its parameters and every attempt."""
        run = self._run(parse_params(request, RunIdPath, path=True).runId)
        with self.scheduler.engine.connect() as conn:
            params = runs_db.read_dag_run_params(conn, run.run_id)
            attempts = tasks_db.read_dag_run_tasks(conn, run.dag_id, run.exec_ts)
            errors = tasks_db.read_task_errors(conn, run.dag_id, run.exec_ts)
        tasks = [
            TaskAttemptOut(
                taskId=a.task_id,
                retry=a.retry,
                status=str(a.status),
                insertTs=a.insert_ts,
                statusUpdateTs=a.status_update_ts,
                error=errors.get((a.task_id, a.retry)),
            )
            for a in attempts
        ]
        dag = self.scheduler.registry.get(run.dag_id)
        if dag is not None:
            order = {task_id: i for i, task_id in enumerate(dag.tasks)}
            started = {a.task_id for a in attempts}
            tasks += [
                TaskAttemptOut(
                    taskId=task_id,
                    retry=0,
                    status=str(TaskStatus.NO_STATUS),
                    insertTs=None,
                    statusUpdateTs=None,
                    error=None,
                )
                for task_id in dag.tasks
                if task_id not in started
            ]
            tasks.sort(key=lambda t: (order.get(t.taskId, len(order)), t.retry))
        out = DagRunDetailsOut(**_run_out(run).model_dump(), params=params, tasks=tasks)
        return _json(out)

    async def get_task_logs(self, request: Request) -> Response:
        """``GET /dag/run/task/logs/{runId}/{taskId}``: one attempt's log records, paged."""
        where = parse_params(request, TaskLogsPath, path=True)
        query = parse_params(request, TaskLogsQuery)
        run = self._run(where.runId)
        with self.scheduler.engine.connect() as conn:
            attempts = read_task_attempts(conn, run.dag_id, run.exec_ts, where.taskId)
        dag = self.scheduler.registry.get(run.dag_id)
        if not attempts and (dag is None or where.taskId not in dag.tasks):
            raise NotFoundError(f"taskId: DAG run {run.run_id} has no task {where.taskId!r}")
        latest = attempts[-1].retry if attempts else 0
        retry = latest if query.retry is None else query.retry
        attempt = next((a for a in attempts if a.retry == retry), None)
        if attempt is None and query.retry is not None and attempts:
            raise NotFoundError(f"retry: task {where.taskId!r} has no attempt {retry}")
        status = attempt.status if attempt is not None else TaskStatus.NO_STATUS
        records: list[LogRecordOut] = []
        if attempt is not None and self.scheduler.logs_engine is not None:
            with self.scheduler.logs_engine.connect() as conn:
                lines = read_task_log_lines(
                    conn,
                    run.dag_id,
                    run.exec_ts,
                    where.taskId,
                    retry,
                    offset=query.offset,
                    limit=query.limit,
                )
            records = [
                LogRecordOut(
                    insertTs=r.insert_ts, level=r.level, message=r.message, attributes=r.attributes
                )
                for r in lines
            ]
        finished = status.is_terminal or status is TaskStatus.FAILED_PENDING_RETRY
        return _json(
            TaskLogsOut(
                runId=run.run_id,
                dagId=run.dag_id,
                execTs=run.exec_ts,
                taskId=where.taskId,
                retry=retry,
                status=str(status),
                finished=finished,
                runStatus=run.status,
                latestRetry=latest,
                offset=query.offset,
                nextOffset=query.offset + len(records),
                records=records,
            )
        )

    async def list_executors(self, request: Request) -> Response:
        """``GET /executor/list``: executors heard from, most recently seen first."""
        page = parse_params(request, PageQuery)
        ts = self.scheduler.task_scheduler
        everyone = ts.executors_view() if ts is not None else []
        now = self.scheduler.clock.now()
        items = [
            ExecutorOut(
                name=e.name,
                firstSeen=format_ts(e.first_seen),
                lastSeen=format_ts(e.last_seen),
                lastSeenAgoS=max(0.0, (now - e.last_seen).total_seconds()),
                running=e.running,
                capacity=e.capacity,
                leases=len(e.leases),
            )
            for e in everyone[page.offset : page.offset + page.limit]
        ]
        return _json(
            ExecutorListOut(items=items, total=len(everyone), limit=page.limit, offset=page.offset)
        )


def read_handlers(scheduler: Scheduler) -> dict[str, Handler]:
    """Handlers by route name (``ppacer.api.routes``) for the read endpoints."""
    return ReadApi(scheduler).handlers()
