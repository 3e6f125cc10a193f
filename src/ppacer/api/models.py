"""Wire models of the scheduler's HTTP API (field names as in the original ppacer).

Requests are validated strictly: a field of the wrong type is an error, not a
guess; unknown fields are ignored, as the original does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from ppacer.api.schemas import Answer, TaskToExecOut, UpdateResultOut
from ppacer.dag.status import TaskStatus
from ppacer.errors import InvalidInputError
from ppacer.timeutils import format_ts, parse_ts

__all__ = [
    "PROTOCOL_VERSION",
    "BackfillInput",
    "DagInput",
    "DagRunRestartInput",
    "DagRunTriggerInput",
    "ExecutorRegistration",
    "HeartbeatInput",
    "LogRecord",
    "LogRecordInput",
    "ReportAndPop",
    "ReportAndPopInput",
    "ReportAndPopOut",
    "StatusReport",
    "TaskActionInput",
    "TaskBatch",
    "TaskLogsInput",
    "TaskMarkInput",
    "TaskStatusUpdate",
    "TaskStatusUpdates",
    "TaskToExec",
    "describe_validation_error",
    "parse_exec_ts",
    "validation_detail",
]


@dataclass(frozen=True, slots=True)
class TaskToExec:
    """A task attempt to run, as ``GET /dag/task/pop`` hands it to an executor."""

    dag_id: str
    exec_ts: str
    task_id: str
    retry: int
    # Extensions over the original protocol (its clients ignore them).
    run_id: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    # Values the task's parents returned, by parent task id.
    upstream: dict[str, Any] = field(default_factory=dict)
    # The lease on this attempt: reports carry the token; heartbeats renew it
    # within ``lease_timeout_s`` seconds or the attempt is failed as "executor lost".
    lease_token: str | None = None
    lease_timeout_s: float | None = None
    # "RUNNING" when the scheduler marked the attempt running as it handed it
    # out (the executor need not report RUNNING); None from older schedulers.
    status: str | None = None
    # The code version of the task this attempt runs (its run's DAG version): after a
    # hot reload an executor runs an older run's attempts with the code they started on.
    code_version: str | None = None

    def with_lease(
        self, token: str | None, timeout_s: float | None, status: str | None = None
    ) -> TaskToExec:
        """This attempt with a lease (and a status). Built field by field:
        ``dataclasses.replace`` costs more than the rest of a hand-out."""
        return TaskToExec(
            self.dag_id,
            self.exec_ts,
            self.task_id,
            self.retry,
            self.run_id,
            self.params,
            self.upstream,
            token,
            timeout_s,
            status,
            self.code_version,
        )

    def to_json(self) -> dict[str, Any]:
        """The wire form: the original's four fields plus our extensions."""
        return {
            "dagId": self.dag_id,
            "execTs": self.exec_ts,
            "taskId": self.task_id,
            "retry": self.retry,
            "runId": self.run_id,
            "params": self.params,
            "upstream": self.upstream,
            "leaseToken": self.lease_token,
            "leaseTimeoutS": self.lease_timeout_s,
            "status": self.status,
            "codeVersion": self.code_version,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskToExec:
        """Read the wire form (everything past the original's four fields is optional)."""
        return cls(
            dag_id=str(data["dagId"]),
            exec_ts=str(data["execTs"]),
            task_id=str(data["taskId"]),
            retry=int(data.get("retry", 0)),
            run_id=data.get("runId"),
            params=dict(data.get("params") or {}),
            upstream=dict(data.get("upstream") or {}),
            lease_token=data.get("leaseToken"),
            lease_timeout_s=data.get("leaseTimeoutS"),
            status=data.get("status"),
            code_version=data.get("codeVersion"),
        )


@dataclass(frozen=True, slots=True)
class TaskBatch:
    """``GET /dag/task/pop/batch``: the attempts handed to an executor in one answer."""

    tasks: list[TaskToExec]

    def to_json(self) -> dict[str, Any]:
        """The wire form, ``{"tasks": [...]}``."""
        return {"tasks": [task.to_json() for task in self.tasks]}


@dataclass(frozen=True, slots=True)
class StatusReport:
    """An executor's report on one task attempt: the one shape from executor to database.

    The executor builds it (:meth:`for_task`), the client sends it
    (:meth:`to_json`), the server reads it from ``POST /dag/task/update``
    (:meth:`TaskStatusUpdate.to_report`) and the task scheduler applies it.
    ``exec_ts`` is the run's stored timestamp text.
    """

    dag_id: str
    exec_ts: str
    task_id: str
    retry: int
    status: TaskStatus
    task_error: str | None = None
    # Extensions: the lease token from the pop (a stale one gets 409), the value a
    # successful task returned, and the children a branch follows.
    lease_token: str | None = None
    output: Any = None
    branch: list[str] | None = None

    @classmethod
    def for_task(
        cls,
        task: TaskToExec,
        status: TaskStatus,
        task_error: str | None = None,
        *,
        output: Any = None,
        branch: list[str] | None = None,
    ) -> StatusReport:
        """The report on the attempt ``task`` (with its lease token)."""
        return cls(
            task.dag_id,
            task.exec_ts,
            task.task_id,
            task.retry,
            status,
            task_error,
            task.lease_token,
            output,
            branch,
        )

    @property
    def attempt(self) -> str:
        """The attempt in words, for log lines."""
        return (
            f"{{DagId:{self.dag_id} ExecTs:{self.exec_ts} TaskId:{self.task_id} "
            f"Retry:{self.retry}}}"
        )

    def to_json(self) -> dict[str, Any]:
        """The wire form (``POST /dag/task/update``): the original's fields, then extensions."""
        body: dict[str, Any] = {
            "dagId": self.dag_id,
            "execTs": self.exec_ts,
            "taskId": self.task_id,
            "retry": self.retry,
            "status": str(self.status),
            "taskError": self.task_error,
        }
        if self.lease_token is not None:
            body["leaseToken"] = self.lease_token
        if self.output is not None:
            body["output"] = self.output
        if self.branch is not None:
            body["branch"] = self.branch
        return body


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One task log record shipped by an executor (``POST /dag/task/logs``).

    ``seq`` numbers the records of one attempt from 0, so a record sent again
    (its answer was lost) is stored once.
    """

    dag_id: str
    exec_ts: str
    task_id: str
    retry: int
    seq: int
    insert_ts: str
    level: str
    message: str
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The wire form."""
        return {
            "dagId": self.dag_id,
            "execTs": self.exec_ts,
            "taskId": self.task_id,
            "retry": self.retry,
            "seq": self.seq,
            "insertTs": self.insert_ts,
            "level": self.level,
            "message": self.message,
            "attributes": self.attributes,
        }


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
        try:
            status = TaskStatus(self.status)
        except ValueError:
            raise InvalidInputError(f"status: unknown task status {self.status!r}") from None
        return StatusReport(
            self.dagId,
            parse_exec_ts(self.execTs),
            self.taskId,
            self.retry,
            status,
            self.taskError,
            self.leaseToken,
            self.output,
            self.branch,
        )


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
        return LogRecord(
            self.dagId,
            parse_exec_ts(self.execTs),
            self.taskId,
            self.retry,
            self.seq,
            parse_exec_ts(self.insertTs, "insertTs"),
            self.level,
            self.message,
            self.attributes,
        )


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


@dataclass(frozen=True, slots=True)
class ReportAndPop:
    """The answer of ``POST /dag/task/update/pop``: per report its HTTP status and error
    (as the batch's), then the attempts taken (leased and RUNNING, as a pop's)."""

    results: list[tuple[int, str | None]]
    tasks: list[TaskToExec]

    def to_json(self) -> dict[str, Any]:
        """The wire form, ``{"results": [{"status", "error"}...], "tasks": [...]}``."""
        return {
            "results": [{"status": status, "error": error} for status, error in self.results],
            "tasks": [task.to_json() for task in self.tasks],
        }


class ReportAndPopOut(Answer):
    """``POST /dag/task/update/pop``: one result per report, in order, and the attempts taken."""

    results: list[UpdateResultOut]
    tasks: list[TaskToExecOut]


class HeartbeatInput(_Input):
    """``POST /executor/heartbeat``: an executor is alive and still working on these leases."""

    executor: str = Field(min_length=1, max_length=200)
    leases: list[str] = Field(default_factory=list)
    running: int = Field(default=0, ge=0)
    capacity: int | None = Field(default=None, ge=1)


#: Version of this API beyond the original protocol (the original's clients speak 1).
PROTOCOL_VERSION = 2


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


def parse_exec_ts(text: str, field: str = "execTs") -> str:
    """A timestamp from the wire (any form the original or ISO 8601 writes) in stored form."""
    try:
        return format_ts(parse_ts(text))
    except ValueError as exc:
        raise InvalidInputError(f"{field}: {exc}") from None
