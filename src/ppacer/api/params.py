"""The query and path parameters of the API's routes, validated by these models.

Text is converted (``"10"`` is 10); unknown parameters are ignored. The route
table names each route's models; the OpenAPI document shows their schemas.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ppacer.api.models import ACTOR_HEADER
from ppacer.dag.status import DagRunStatus

__all__ = [
    "ACTOR_HEADER",
    "MAX_DB_INT",
    "BackfillIdPath",
    "DagIdPath",
    "DagRunListQuery",
    "LatestRunsPath",
    "LogSearchQuery",
    "PageQuery",
    "PopBatchQuery",
    "PopQuery",
    "RunIdPath",
    "SchedulePreviewQuery",
    "TaskAttemptPath",
    "TaskLogsPath",
    "TaskLogsQuery",
]


#: Largest integer the databases store (SQLite and PostgreSQL BIGINT).
MAX_DB_INT = 2**63 - 1


class _Params(BaseModel):
    """Query or path parameters: text is converted; unknown ones are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


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


class LogSearchQuery(_Params):
    """``GET /dag/run/task/logs/search``: words to find in task logs, and filters."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, defer_build=True)

    q: str = Field(
        min_length=1,
        max_length=500,
        description='words that must all occur; "quoted words" in that order; a trailing * '
        "matches a word's start (conn*)",
    )
    dagId: str | None = Field(default=None, min_length=1, description="only logs of this DAG")
    taskId: str | None = Field(default=None, min_length=1, description="only logs of this task")
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] | None = Field(
        default=None, description="the lowest level shown (WARNING: warnings, errors, critical)"
    )
    from_: str | None = Field(
        default=None, alias="from", min_length=1, description="logged at or after this time"
    )
    to: str | None = Field(default=None, min_length=1, description="logged before this time")
    limit: int = Field(default=50, ge=1, le=500, description="lines at most")
    offset: int = Field(default=0, ge=0, le=10000, description="lines to skip (newest first)")


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
