"""The shape of every answer of the API (the original's UI data: :mod:`ppacer.api.original_ui`).

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
    "Answer",
    "BackfillOut",
    "BatchPopOut",
    "BatchUpdateOut",
    "DagDetailsOut",
    "DagListOut",
    "DagPausedOut",
    "DagRunDetailsOut",
    "DagRunListOut",
    "DagRunOut",
    "DagSummaryOut",
    "ErrorOut",
    "ExecutorListOut",
    "ExecutorOut",
    "FoundLogLineOut",
    "HealthOut",
    "HeartbeatOut",
    "LogRecordOut",
    "LogSearchOut",
    "RegistrationOut",
    "RejectedOut",
    "RestartOut",
    "RunEventListOut",
    "RunEventOut",
    "SchedulePreviewOut",
    "StateOut",
    "TaskAttemptOut",
    "TaskClearedOut",
    "TaskInfoOut",
    "TaskLogsOut",
    "TaskLogsStoredOut",
    "TaskMarkedOut",
    "TaskToExecOut",
    "TriggerOut",
]


class Answer(BaseModel):
    """An answer: the fields listed are always there; newer schedulers may add more.

    Read it by attribute (``run.status``) or, as the JSON it came as, by item
    (``run["status"]``, ``dict(run)``): item access gives the JSON form.
    """

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)
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
    codeVersion: str | None = Field(
        default=None, description="the code version of the task this attempt runs"
    )


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
    existingRuns: int | None = Field(
        default=None,
        description="points of the range that had a run when the backfill was created (skipped); "
        "only in the answer to POST /dag/backfill",
    )


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
    """``GET /dag/run/list``: a page of runs, newest logical time first (as ``recentRuns``)."""

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
    timezone: str | None = Field(
        default=None,
        description="the scheduler's zone (IANA name) for local times, and for a cron "
        "schedule given without one",
    )


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


class FoundLogLineOut(Answer):
    """A task log line a search found (its message with secrets masked)."""

    runId: int | None = Field(description="the run (null: no run of the DAG at execTs)")
    dagId: str
    execTs: str
    taskId: str
    retry: int
    line: int = Field(
        description="its number in the attempt's log, from 0: the `offset` that reads it from "
        "GET /dag/run/task/logs/{runId}/{taskId}"
    )
    insertTs: str
    level: str
    message: str


class LogSearchOut(Answer):
    """``GET /dag/run/task/logs/search``: a page of matching lines, newest first.

    No total: counting every match of a common word over millions of lines
    costs more than the page; ``hasMore`` says whether a next page has any.
    """

    items: list[FoundLogLineOut]
    limit: int
    offset: int
    hasMore: bool


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


class ReportAndPopOut(Answer):
    """``POST /dag/task/update/pop``: one result per report, in order, and the attempts taken."""

    results: list[UpdateResultOut]
    tasks: list[TaskToExecOut]
