"""Wire models of the scheduler's HTTP API (field names as in the original ppacer).

The shapes that cross the wire on every hop, as plain dataclasses: an attempt
handed out (:class:`TaskToExec`), a report on it (:class:`StatusReport`), a log
record (:class:`LogRecord`). No validation library is loaded here: the request
bodies' models are in :mod:`ppacer.api.inputs` (their old names here still
import them, on first use).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from ppacer.dag.status import TaskStatus
from ppacer.errors import InvalidInputError
from ppacer.timeutils import format_ts, parse_ts

__all__ = [
    "ACTOR_HEADER",
    "PROTOCOL_VERSION",
    "LogRecord",
    "ReportAndPop",
    "StatusReport",
    "TaskBatch",
    "TaskToExec",
    "parse_exec_ts",
]


def __getattr__(name: str) -> Any:
    """The request models that moved to :mod:`ppacer.api.inputs` (and ``ReportAndPopOut``,
    to :mod:`ppacer.api.schemas`): importing them from here still works, loading them."""
    if not name.startswith("_"):
        for module in ("ppacer.api.inputs", "ppacer.api.schemas"):
            found = getattr(importlib.import_module(module), name, None)
            if found is not None:
                return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


#: The request header naming who asks for an operator action, when the body has no
#: ``actor`` (our command line sends ``cli``; optional: without either it is ``api``).
ACTOR_HEADER = "X-Ppacer-Actor"

#: Version of this API beyond the original protocol (the original's clients speak 1).
PROTOCOL_VERSION = 2


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


def parse_exec_ts(text: str, field: str = "execTs") -> str:
    """A timestamp from the wire (any form the original or ISO 8601 writes) in stored form."""
    try:
        return format_ts(parse_ts(text))
    except ValueError as exc:
        raise InvalidInputError(f"{field}: {exc}") from None
