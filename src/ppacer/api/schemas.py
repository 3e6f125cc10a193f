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

from collections.abc import KeysView
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from ppacer.dag.status import DagRunStatus, SchedulerState

__all__ = [
    "MAX_DB_INT",
    "Answer",
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
    "GoTimestampOut",
    "HealthOut",
    "HeartbeatOut",
    "LatestRunsPath",
    "LogRecordOut",
    "PageQuery",
    "PopBatchQuery",
    "PopQuery",
    "RegistrationOut",
    "RejectedOut",
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
    "TaskLogsStoredOut",
    "TaskMarkedOut",
    "TaskToExecOut",
    "TriggerOut",
    "UiLatestRunOut",
    "UiLogRecordOut",
    "UiRunDetailsOut",
    "UiStatsOut",
    "UiTaskDetailsOut",
    "UiTaskLogsOut",
    "UiTaskOut",
    "UiTaskPosOut",
]

#: Largest integer the databases store (SQLite and PostgreSQL BIGINT).
MAX_DB_INT = 2**63 - 1


class _Params(BaseModel):
    """Query or path parameters: text is converted (``"10"`` is 10); unknown ones are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Answer(BaseModel):
    """An answer: the fields listed are always there; newer schedulers may add more.

    Read it by attribute (``run.status``) or, as the JSON it came as, by item
    (``run["status"]``, ``dict(run)``): item access gives the JSON form.
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    _json: dict[str, Any] | None = PrivateAttr(default=None)

    def to_json(self) -> dict[str, Any]:
        """The answer as JSON data (field names as on the wire)."""
        if self._json is None:
            self._json = self.model_dump(mode="json", by_alias=True)
        return self._json

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def get(self, key: str, default: Any = None) -> Any:
        """The JSON value of ``key``, or ``default``."""
        return self.to_json().get(key, default)

    def keys(self) -> KeysView[str]:
        """The answer's JSON field names."""
        return self.to_json().keys()

    def __contains__(self, key: object) -> bool:
        return key in self.to_json()


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


class ErrorOut(Answer):
    """Every 4xx and 5xx answer: a message naming what was wrong, and optional detail."""

    error: str
    detail: Any = None


class TaskToExecOut(Answer):
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


class BatchPopOut(Answer):
    """``GET /dag/task/pop/batch``."""

    tasks: list[TaskToExecOut]


class UpdateResultOut(Answer):
    status: int
    error: str | None = None


class BatchUpdateOut(Answer):
    """``POST /dag/task/update/batch``: one result per report, in order."""

    results: list[UpdateResultOut]


class RegistrationOut(Answer):
    """``POST /executor/register``: the scheduler's terms."""

    executor: str
    schedulerVersion: str
    protocolVersion: int
    leaseTimeoutS: float = Field(description="heartbeat each lease within this many seconds")
    maxPopWaitS: float = Field(description="the longest long poll the scheduler grants")
    # What the scheduler's DAGs need that this executor lacks, by "dagId/taskId".
    missingTasks: list[str] = Field(default_factory=list)
    mismatchedTasks: list[str] = Field(default_factory=list)


class HeartbeatOut(Answer):
    """``POST /executor/heartbeat``: leases the executor no longer holds."""

    lost: list[str]
    leaseTimeoutS: float


class RejectedOut(Answer):
    """An item of a batch that was refused, by its index in the batch."""

    index: int
    error: str


class TaskLogsStoredOut(Answer):
    """``POST /dag/task/logs``: records stored, re-sent copies skipped, records refused."""

    stored: int
    duplicates: int
    rejected: list[RejectedOut]


class TriggerOut(Answer):
    """``POST /dag/run/trigger``: the new run (``runId`` is null only from the original's 200)."""

    runId: int | None
    dagId: str
    execTs: str | None


class RestartOut(Answer):
    """``POST /dag/run/restart``."""

    dagId: str
    execTs: str
    restart: int | None


class StateOut(Answer):
    """``GET /state``."""

    state: SchedulerState


class DagPausedOut(Answer):
    """``POST /dag/pause`` and ``/dag/unpause``."""

    dagId: str
    paused: bool


class BackfillOut(Answer):
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


class TaskClearedOut(Answer):
    """``POST /dag/run/task/clear``: the tasks that will run again."""

    dagId: str
    execTs: str
    cleared: list[str]


class TaskMarkedOut(Answer):
    """``POST /dag/run/task/mark``."""

    dagId: str
    taskId: str
    status: str


class SchedulePointOut(Answer):
    utc: str
    local: str


class SchedulePreviewOut(Answer):
    """``GET /dag/schedule/{dagId}``: next points in the DAG's zone and in UTC."""

    dagId: str
    points: list[SchedulePointOut]


class RunEventOut(Answer):
    """One entry of ``GET /dag/run/history/{runId}``: who did what, when."""

    insertTs: str
    action: str
    taskId: str | None
    actor: str
    detail: Any = None


class GoTimestampOut(Answer):
    """A timestamp as the original's Go UI shows it (``api.Timestamp``), in the scheduler's zone."""

    toDisplay: str = Field(description='"15:04:05" today, else "2006-01-02 15:04:05"')
    date: str = Field(description='"2006-01-02"')
    time: str = Field(description='"15:04:05.999999" (trailing zeros trimmed)')
    timezone: str = Field(description="the zone's abbreviation, e.g. UTC or CET")


class RunCountsOut(Answer):
    """Counts by exact status (other statuses are not counted, as in the original)."""

    success: int
    failed: int
    scheduled: int
    running: int


class UiStatsOut(Answer):
    """``GET /ui/dagrun/stats`` (the original's ``UIDagrunStats``)."""

    dagruns: RunCountsOut
    dagrunTasks: RunCountsOut
    dagrunQueueLen: int
    taskSchedulerQueueLen: int
    goroutinesNum: int


class UiLatestRunOut(Answer):
    """One run of ``GET /ui/dagrun/latest/{n}`` (the original's ``UIDagrunRow``)."""

    runId: int
    dagId: str
    execTs: GoTimestampOut
    insertTs: GoTimestampOut
    status: str
    statusUpdateTs: GoTimestampOut
    duration: str = Field(description='Go\'s duration form, e.g. "71.751ms", "1m2.5s"')
    taskNum: int
    taskCompletedNum: int


class UiTaskPosOut(Answer):
    """A task's place in the graph (root: depth 1, width 1)."""

    depth: int
    width: int


class UiLogRecordOut(Answer):
    """A task log record (the original's ``UITaskLogRecord``)."""

    insertTs: GoTimestampOut
    level: str
    message: str
    attributesJson: str = Field(description="the record's attributes as a JSON object text")


class UiTaskLogsOut(Answer):
    """A task attempt's log records (the original's ``UITaskLogs``)."""

    logRecordsCount: int
    loadedRecords: int
    logRecords: list[UiLogRecordOut]


class UiTaskOut(Answer):
    """A task attempt of a run (the original's ``UIDagrunTask``; not started: retry -1)."""

    taskId: str
    retry: int
    insertTs: GoTimestampOut
    taskNotStarted: bool
    status: str
    taskPosition: UiTaskPosOut
    duration: str
    configJson: str
    taskLogs: UiTaskLogsOut
    # Extensions (the original's UI ignores them).
    taskTypeName: str = ""
    taskError: str | None = None


class UiRunDetailsOut(Answer):
    """``GET /ui/dagrun/{runId}`` (the original's ``UIDagrunDetails``)."""

    runId: int
    dagId: str
    execTs: GoTimestampOut
    execTsRaw: str
    status: str
    duration: str
    tasks: list[UiTaskOut]


class UiTaskDetailsOut(UiTaskOut):
    """``GET /ui/dagrun/task/{runId}/{taskId}/{retry}``: one attempt, with the source that ran."""

    taskBodySource: str
    dagId: str
    runId: int


class DagRunOut(Answer):
    """A DAG run in lists."""

    runId: int
    dagId: str
    execTs: str
    insertTs: str
    status: DagRunStatus
    statusUpdateTs: str


class PageOut(Answer):
    total: int = Field(description="items matching, on all pages")
    limit: int
    offset: int


class RunEventListOut(PageOut):
    """``GET /dag/run/history/{runId}``: a page of a run's history, oldest first."""

    items: list[RunEventOut]


class DagRunListOut(PageOut):
    """``GET /dag/run/list``: a page of runs, newest first."""

    items: list[DagRunOut]


class TaskAttemptOut(Answer):
    """One attempt of a task in a run (``NO_STATUS``, retry 0: not scheduled yet)."""

    taskId: str
    retry: int
    status: str
    insertTs: str | None = Field(description="when the attempt was scheduled (queued)")
    statusUpdateTs: str | None
    error: str | None
    startTs: str | None = Field(
        default=None, description="when an executor took it (the queue wait ends, the run begins)"
    )
    executor: str | None = Field(default=None, description="the executor that ran it")
    codeVersion: str | None = Field(
        default=None, description="the task's code version it ran (null: unknown)"
    )
    waitingReason: str | None = Field(
        default=None, description="why no connected executor may take it (a queued attempt)"
    )


class DagRunDetailsOut(DagRunOut):
    """``GET /dag/run/details/{runId}``: the run, its parameters and every task attempt."""

    params: dict[str, Any]
    tasks: list[TaskAttemptOut]


class DagSummaryOut(Answer):
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


class TaskInfoOut(Answer):
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


class LogRecordOut(Answer):
    """A task log record: when, level, message and the record's attributes."""

    insertTs: str
    level: str
    message: str
    attributes: dict[str, Any]


class TaskLogsOut(Answer):
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


class ExecutorOut(Answer):
    """An executor the scheduler has heard from."""

    name: str
    firstSeen: str
    lastSeen: str
    lastSeenAgoS: float
    running: int
    capacity: int | None
    leases: int
    queues: list[str] = Field(default_factory=lambda: ["default"])
    labels: dict[str, str] = Field(default_factory=dict)
    registered: bool = Field(default=False, description="it announced its queues and code versions")
    ppacerVersion: str | None = None


class ExecutorListOut(PageOut):
    """``GET /executor/list``: executors, most recently seen first."""

    items: list[ExecutorOut]


class HealthOut(Answer):
    """``GET /healthz``: ``ok`` when the database answers and the loops run."""

    status: str
    checks: dict[str, Any]
