"""Answers of the original protocol's UI data (``/ui/dagrun/...``), as its Go UI decodes them.

Field names and types are the original's (``api/ui_dagrun.go`` of ppacer/core):
timestamps as ``{toDisplay, date, time, timezone}`` objects, durations as Go's
duration text, configs and attributes as JSON text. Fields past the original's
are extensions its UI ignores.
"""

from __future__ import annotations

from pydantic import Field

from ppacer.api.schemas import Answer

__all__ = [
    "GoTimestampOut",
    "RunCountsOut",
    "UiLatestRunOut",
    "UiLogRecordOut",
    "UiRunDetailsOut",
    "UiStatsOut",
    "UiTaskDetailsOut",
    "UiTaskLogsOut",
    "UiTaskOut",
    "UiTaskPosOut",
]


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
