"""The request bodies of the HTTP API, validated by these models (field names as in the
original ppacer).

Requests are validated strictly: a field of the wrong type is an error, not a
guess; unknown fields are ignored, as the original does. The executors' routes
read their common, valid requests by hand (:mod:`ppacer.api.checked`) and come
here for anything else, so these models decide what is valid on every route,
and the OpenAPI document shows them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from ppacer.api.checked import LogRecordIn, StatusUpdate
from ppacer.api.models import PROTOCOL_VERSION, LogRecord, StatusReport

__all__ = [
    "BackfillInput",
    "DagInput",
    "DagRunRestartInput",
    "DagRunTriggerInput",
    "ExecutorRegistration",
    "HeartbeatInput",
    "LogRecordInput",
    "ReportAndPopInput",
    "TaskActionInput",
    "TaskLogsInput",
    "TaskMarkInput",
    "TaskStatusUpdate",
    "TaskStatusUpdates",
    "describe_validation_error",
    "validation_detail",
]


# Fields holding free text a task wrote (its error, a log line): a NUL character there is
# kept visible as U+FFFD; PostgreSQL's text cannot hold NUL.
_FREE_TEXT = frozenset({"taskError", "message"})
# Fields whose JSON is stored encoded (escaped): any character may be inside.
_JSON_VALUES = frozenset({"params", "output", "attributes", "versions", "retained"})


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True, defer_build=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any, info: ValidationInfo) -> Any:
        """No NUL character in names and ids (a 400 naming the field): a database's text
        (PostgreSQL's) cannot hold one. In free text it becomes U+FFFD."""
        if isinstance(value, str):
            if "\x00" not in value:
                return value
            if info.field_name in _FREE_TEXT:
                return value.replace("\x00", "\ufffd")
        elif isinstance(value, list | dict) and info.field_name not in _JSON_VALUES:
            texts = value if isinstance(value, list) else [*value, *value.values()]
            if not any(isinstance(t, str) and "\x00" in t for t in texts):
                return value
        else:
            return value
        raise ValueError("a NUL character (\\u0000) is not allowed here")


class TaskStatusUpdate(_Input):
    """``POST /dag/task/update``: an executor's report on one task attempt."""

    dagId: str = Field(min_length=1)
    execTs: str = Field(min_length=1)
    taskId: str = Field(min_length=1)
    retry: int = Field(ge=0)
    status: str = Field(min_length=1)
    taskError: str | None = None
    # Extensions: the lease token from the pop (a stale one gets 409), the
    # value a successful task returned, and the children a branch follows.
    leaseToken: str | None = None
    output: Any = None
    branch: list[str] | None = None

    def to_report(self) -> StatusReport:
        """The report this update carries (timestamp normalised; a bad one or status is a 400)."""
        return StatusUpdate.from_valid(self.model_dump()).to_report()


class LogRecordInput(_Input):
    """One record of ``POST /dag/task/logs``."""

    dagId: str = Field(min_length=1)
    execTs: str = Field(min_length=1)
    taskId: str = Field(min_length=1)
    retry: int = Field(ge=0)
    seq: int = Field(ge=0, le=2**62)
    insertTs: str = Field(min_length=1)
    level: str = Field(min_length=1, max_length=20)
    message: str
    attributes: dict[str, Any] = Field(default_factory=dict)

    def to_record(self) -> LogRecord:
        """The record, timestamps in stored form (a bad one is a 400 naming it)."""
        return LogRecordIn.from_valid(self.model_dump()).to_record()


class TaskLogsInput(_Input):
    """``POST /dag/task/logs``: task log records an executor ships to the scheduler."""

    executor: str = Field(min_length=1, max_length=200)
    records: list[LogRecordInput] = Field(max_length=5000)


class TaskStatusUpdates(_Input):
    """``POST /dag/task/update/batch``: several reports, applied in order in one transaction."""

    updates: list[TaskStatusUpdate] = Field(max_length=1000)


class ReportAndPopInput(_Input):
    """``POST /dag/task/update/pop``: reports (as the batch), then up to ``max`` attempts now.

    One round trip per hop: an executor's worker reports the attempt it ran and
    takes its next one, first of all an attempt its report made ready.
    """

    updates: list[TaskStatusUpdate] = Field(max_length=1000)
    executor: str = Field(min_length=1, max_length=200)
    max: int = Field(default=1, ge=0, le=1000)


class HeartbeatInput(_Input):
    """``POST /executor/heartbeat``: an executor is alive and still working on these leases."""

    executor: str = Field(min_length=1, max_length=200)
    leases: list[str] = Field(default_factory=list)
    running: int = Field(default=0, ge=0)
    capacity: int | None = Field(default=None, ge=1)


class ExecutorRegistration(_Input):
    """``POST /executor/register``: who an executor is and what it can run.

    An executor that registers is handed only attempts of its ``queues`` whose
    code version it has (``versions``: DAG id -> task id -> code version, see
    ``ppacer.dag.task.task_code_version``). One that never registers (the
    original's executor, say) gets "default"-queue attempts of any version.
    """

    executor: str = Field(min_length=1, max_length=200)
    queues: list[str] = Field(default_factory=lambda: ["default"], min_length=1, max_length=100)
    versions: dict[str, dict[str, str]] = Field(default_factory=dict)
    # Older code versions the executor still holds (DAG id -> task id -> versions), for
    # runs that started before a hot reload; it is handed their attempts too.
    retained: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    ppacerVersion: str | None = Field(default=None, max_length=100)
    protocolVersion: int = Field(default=PROTOCOL_VERSION, ge=1)


class DagRunTriggerInput(_Input):
    """``POST /dag/run/trigger``: run a DAG now (or for ``execTs``), optionally with parameters."""

    dagId: str = Field(min_length=1)
    params: dict[str, Any] | None = None
    execTs: str | None = None
    actor: str | None = None


class DagRunRestartInput(_Input):
    """``POST /dag/run/restart``: restart a FAILED DAG run."""

    dagId: str = Field(min_length=1)
    execTs: str = Field(min_length=1)
    actor: str | None = None


class DagInput(_Input):
    """``POST /dag/pause`` and ``/dag/unpause``."""

    dagId: str = Field(min_length=1)
    actor: str | None = None


class BackfillInput(_Input):
    """``POST /dag/backfill``: run a DAG's schedule points in ``[from, to]``."""

    model_config = ConfigDict(
        extra="ignore", strict=True, frozen=True, populate_by_name=True, defer_build=True
    )

    dagId: str = Field(min_length=1)
    from_: str = Field(alias="from", min_length=1)
    to: str = Field(min_length=1)
    maxActiveRuns: int = Field(default=4, ge=1)
    actor: str | None = None


class TaskActionInput(_Input):
    """``POST /dag/run/task/clear``: a task of a run."""

    dagId: str = Field(min_length=1)
    execTs: str = Field(min_length=1)
    taskId: str = Field(min_length=1)
    actor: str | None = None


class TaskMarkInput(TaskActionInput):
    """``POST /dag/run/task/mark``: set a task's status (SUCCESS or FAILED) by hand."""

    status: str = Field(min_length=1)


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each bad field and what is wrong with it."""
    return "; ".join(f"{d['field']}: {d['problem']}" for d in validation_detail(exc))


def validation_detail(exc: ValidationError) -> list[dict[str, str]]:
    """Each bad field and what is wrong with it, as ``{"field", "problem"}``."""
    return [
        {
            "field": ".".join(str(p) for p in err["loc"]) or "body",
            "problem": err["msg"],
        }
        for err in exc.errors(include_url=False)
    ]
