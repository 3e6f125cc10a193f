"""The rest of the API's contract: parameter models and the shape of every answer.

Request bodies are validated by :mod:`ppacer.api.models`; query and path
parameters of the newer endpoints by the ``*Query`` / ``*Path`` models here; and
the ``*Out`` models describe what each endpoint answers. :mod:`ppacer.api.openapi`
builds the OpenAPI document from exactly these classes, so the document and
the validation cannot drift apart.

Answer models allow extra fields: a newer scheduler may add fields and older
clients ignore them, as the original protocol does.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ppacer.dag.status import DagRunStatus, SchedulerState

__all__ = [
    "MAX_DB_INT",
    "BackfillIdPath",
    "BackfillOut",
    "BatchPopOut",
    "BatchUpdateOut",
    "DagDetailsOut",
    "DagIdPath",
    "DagListOut",
    "DagPausedOut",
    "DagRunDetailsOut",
    "DagRunListOut",
    "DagRunListQuery",
    "DagRunOut",
    "DagSummaryOut",
    "ErrorOut",
    "ExecutorListOut",
    "ExecutorOut",
    "HealthOut",
    "HeartbeatOut",
    "LatestRunsPath",
    "PageQuery",
    "PopBatchQuery",
    "PopQuery",
    "RestartOut",
    "RunEventListOut",
    "RunEventOut",
    "RunIdPath",
    "SchedulePreviewOut",
    "SchedulePreviewQuery",
    "StateOut",
    "TaskAttemptOut",
    "TaskAttemptPath",
    "TaskClearedOut",
    "TaskInfoOut",
    "TaskLogsOut",
    "TaskLogsPath",
    "TaskLogsQuery",
    "TaskMarkedOut",
    "TaskToExecOut",
    "TriggerOut",
    "UiLatestRunOut",
    "UiRunDetailsOut",
    "UiStatsOut",
    "UiTaskDetailsOut",
]

#: Largest integer the databases store (SQLite and PostgreSQL BIGINT).
MAX_DB_INT = 2**63 - 1


class _Params(BaseModel):
    """Query or path parameters: text is converted (``"10"`` is 10); unknown ones are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class _Out(BaseModel):
    """An answer: the fields listed are always there; newer schedulers may add more."""

    model_config = ConfigDict(extra="allow", frozen=True)


# ---------------------------------------------------------------------------- parameters


class PageQuery(_Params):
    """``limit`` and ``offset`` of a paginated list."""

    limit: int = Field(default=50, ge=1, le=1000, description="items per page")
    offset: int = Field(default=0, ge=0, le=MAX_DB_INT, description="items to skip")


class DagRunListQuery(PageQuery):
    """``GET /dag/run/list``: runs newest first, optionally of one DAG and one status."""

    dagId: str | None = Field(default=None, min_length=1, description="only runs of this DAG")
    status: DagRunStatus | None = Field(default=None, description="only runs in this status")


class TaskLogsQuery(_Params):
    """``GET /dag/run/task/logs/...``: which attempt, and which records of it."""

    retry: int | None = Field(
        default=None, ge=0, le=MAX_DB_INT, description="attempt number; default: the latest"
    )
    offset: int = Field(default=0, ge=0, le=MAX_DB_INT, description="records to skip")
    limit: int = Field(default=1000, ge=1, le=10000, description="records at most")


class PopQuery(_Params):
    """``GET /dag/task/pop``: the long poll's wait and the executor's name."""

    wait_s: float = Field(default=0.0, ge=0, description="seconds to wait for a task")
    executor: str | None = Field(
        default=None, max_length=200, description="executor name (makes the lease renewable)"
    )


class PopBatchQuery(PopQuery):
    """``GET /dag/task/pop/batch``: as many tasks as the executor has free slots."""

    max: int = Field(default=1, ge=1, le=1000, description="tasks at most")


class SchedulePreviewQuery(_Params):
    """``GET /dag/schedule/{dagId}``: how many points, after when."""

    n: int = Field(default=10, ge=1, le=1000, description="points to list")
    after: str | None = Field(default=None, description="list points after this time")


class DagIdPath(_Params):
    """A DAG in the path."""

    dagId: str = Field(min_length=1)


class RunIdPath(_Params):
    """A DAG run in the path."""

    runId: int = Field(ge=1, le=MAX_DB_INT)


class TaskLogsPath(RunIdPath):
    """A task of a DAG run in the path."""

    taskId: str = Field(min_length=1)


class TaskAttemptPath(TaskLogsPath):
    """A task attempt in the path."""

    retry: int = Field(ge=0, le=MAX_DB_INT)


class BackfillIdPath(_Params):
    """A backfill in the path."""

    backfillId: int = Field(ge=1, le=MAX_DB_INT)


class LatestRunsPath(_Params):
    """``GET /ui/dagrun/latest/{n}``."""

    n: int = Field(ge=0, le=MAX_DB_INT)


# ---------------------------------------------------------------------------- answers


class ErrorOut(_Out):
    """Every 4xx and 5xx answer: a message naming what was wrong, and optional detail."""

    error: str
    detail: Any = None


class TaskToExecOut(_Out):
    """A task attempt handed to an executor (the original's four fields, then extensions)."""

    dagId: str
    execTs: str
    taskId: str
    retry: int
    runId: int | None = None
    params: dict[str, Any] | None = None
    upstream: dict[str, Any] | None = None
    leaseToken: str | None = None
    leaseTimeoutS: float | None = None
    status: str | None = None


class BatchPopOut(_Out):
    """``GET /dag/task/pop/batch``."""

    tasks: list[TaskToExecOut]


class UpdateResultOut(_Out):
    status: int
    error: str | None = None


class BatchUpdateOut(_Out):
    """``POST /dag/task/update/batch``: one result per report, in order."""

    results: list[UpdateResultOut]


class HeartbeatOut(_Out):
    """``POST /executor/heartbeat``: leases the executor no longer holds."""

    lost: list[str]
    leaseTimeoutS: float


class TriggerOut(_Out):
    """``POST /dag/run/trigger``: the new run."""

    runId: int
    dagId: str
    execTs: str


class RestartOut(_Out):
    """``POST /dag/run/restart``."""

    dagId: str
    execTs: str
    restart: int


class StateOut(_Out):
    """``GET /state``."""

    state: SchedulerState


class DagPausedOut(_Out):
    """``POST /dag/pause`` and ``/dag/unpause``."""

    dagId: str
    paused: bool


class BackfillOut(_Out):
    """A backfill and its progress (``runIds`` only from ``GET /dag/backfill/{id}``)."""

    backfillId: int
    dagId: str
    from_: str = Field(alias="from")
    to: str
    maxActiveRuns: int
    nextTs: str | None
    status: str
    insertTs: str
    updateTs: str
    actor: str
    runIds: list[int] | None = None


class TaskClearedOut(_Out):
    """``POST /dag/run/task/clear``: the tasks that will run again."""

    dagId: str
    execTs: str
    cleared: list[str]


class TaskMarkedOut(_Out):
    """``POST /dag/run/task/mark``."""

    dagId: str
    taskId: str
    status: str


class SchedulePointOut(_Out):
    utc: str
    local: str


class SchedulePreviewOut(_Out):
    """``GET /dag/schedule/{dagId}``: next points in the DAG's zone and in UTC."""

    dagId: str
    points: list[SchedulePointOut]


class RunEventOut(_Out):
    """One entry of ``GET /dag/run/history/{runId}``: who did what, when."""

    insertTs: str
    action: str
    taskId: str | None
    actor: str
    detail: Any = None


class RunCountsOut(_Out):
    success: int
    failed: int
    scheduled: int
    running: int


class UiStatsOut(_Out):
    """``GET /ui/dagrun/stats`` (as in the original)."""

    dagruns: RunCountsOut
    dagrunTasks: RunCountsOut
    dagrunQueueLen: int
    taskSchedulerQueueLen: int
    goroutinesNum: int


class UiLatestRunOut(_Out):
    """One run of ``GET /ui/dagrun/latest/{n}`` (as in the original)."""

    runId: int
    dagId: str
    execTs: str
    insertTs: str
    status: str
    statusUpdateTs: str
    duration: str
    taskNum: int
    taskCompletedNum: int


class PosOut(_Out):
    depth: int
    width: int


class LogRecordOut(_Out):
    insertTs: str
    level: str
    message: str
    attributes: dict[str, Any]


class UiTaskLogsOut(_Out):
    loadedRecords: int
    records: list[LogRecordOut]


class UiTaskOut(_Out):
    taskId: str
    retry: int
    insertTs: str | None
    status: str
    statusUpdateTs: str | None
    pos: PosOut
    duration: str | None
    config: dict[str, Any]
    taskTypeName: str
    taskError: str | None


class UiTaskWithLogsOut(UiTaskOut):
    taskLogs: UiTaskLogsOut


class UiRunDetailsOut(_Out):
    """``GET /ui/dagrun/{runId}`` (as in the original, plus errors)."""

    runId: int
    dagId: str
    execTs: str
    execTsRaw: str
    status: str
    insertTs: str
    statusUpdateTs: str
    duration: str
    tasks: list[UiTaskWithLogsOut]


class UiTaskDetailsOut(UiTaskWithLogsOut):
    """``GET /ui/dagrun/task/{runId}/{taskId}/{retry}``: one attempt with source and logs."""

    taskBodySource: str
    dagId: str
    execTs: str
    runId: int


class DagRunOut(_Out):
    """A DAG run in lists."""

    runId: int
    dagId: str
    execTs: str
    insertTs: str
    status: DagRunStatus
    statusUpdateTs: str


class PageOut(_Out):
    total: int = Field(description="items matching, on all pages")
    limit: int
    offset: int


class RunEventListOut(PageOut):
    """``GET /dag/run/history/{runId}``: a page of a run's history, oldest first."""

    items: list[RunEventOut]


class DagRunListOut(PageOut):
    """``GET /dag/run/list``: a page of runs, newest first."""

    items: list[DagRunOut]


class TaskAttemptOut(_Out):
    """One attempt of a task in a run (``NO_STATUS``, retry 0: not scheduled yet)."""

    taskId: str
    retry: int
    status: str
    insertTs: str | None
    statusUpdateTs: str | None
    error: str | None


class DagRunDetailsOut(DagRunOut):
    """``GET /dag/run/details/{runId}``: the run, its parameters and every task attempt."""

    params: dict[str, Any]
    tasks: list[TaskAttemptOut]


class DagSummaryOut(_Out):
    """A DAG in ``GET /dag/list``."""

    dagId: str
    description: str
    schedule: str | None
    paused: bool
    tags: list[str]
    catchUp: bool
    maxActiveRuns: int
    taskNum: int
    nextScheduleTs: str | None = Field(
        description="the next schedule point (UTC); null when unscheduled or paused"
    )
    lastRun: DagRunOut | None


class DagListOut(PageOut):
    """``GET /dag/list``: a page of DAGs by id."""

    items: list[DagSummaryOut]


class TaskInfoOut(_Out):
    """A task of a DAG: its place in the graph and its config."""

    taskId: str
    taskType: str
    parents: list[str]
    children: list[str]
    depth: int
    width: int
    triggerRule: str
    config: dict[str, Any]


class DagDetailsOut(DagSummaryOut):
    """``GET /dag/details/{dagId}``: the DAG, its tasks in graph order and its latest runs."""

    tasks: list[TaskInfoOut]
    recentRuns: list[DagRunOut]


class TaskLogsOut(_Out):
    """``GET /dag/run/task/logs/{runId}/{taskId}``: records of one attempt from ``offset`` on.

    Follow a running task by asking again with ``offset=nextOffset`` until
    ``finished`` is true and no records come back.
    """

    runId: int
    dagId: str
    execTs: str
    taskId: str
    retry: int
    status: str
    finished: bool = Field(description="the attempt's status is final: no more records come")
    runStatus: DagRunStatus
    latestRetry: int
    offset: int
    nextOffset: int
    records: list[LogRecordOut]


class ExecutorOut(_Out):
    """An executor the scheduler has heard from."""

    name: str
    firstSeen: str
    lastSeen: str
    lastSeenAgoS: float
    running: int
    capacity: int | None
    leases: int


class ExecutorListOut(PageOut):
    """``GET /executor/list``: executors, most recently seen first."""

    items: list[ExecutorOut]


class HealthOut(_Out):
    """``GET /healthz``: ``ok`` when the database answers and the loops run."""

    status: str
    checks: dict[str, Any]
