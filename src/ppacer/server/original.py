"""The original protocol's UI data (``/ui/dagrun/...``), in the shapes its Go UI decodes.

Timestamps are ``{toDisplay, date, time, timezone}`` objects in the scheduler's
zone, durations Go's ``time.Duration`` text, configs and log attributes JSON
text; a task that has not started is listed with retry -1, an empty status and
``taskNotStarted``. Counts are by exact status, as the original counts them.
Fields beyond the original's (``taskError``, ``taskTypeName``, ``taskBodySource``)
are extensions its UI ignores.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from ppacer.dag.status import TaskStatus
from ppacer.db.dags import TaskRow
from ppacer.db.tasklogs import TaskLogLine
from ppacer.errors import NotFoundError
from ppacer.gotime import go_duration, ui_timestamp
from ppacer.lazy import lazy_module
from ppacer.scheduler.core import SchedulerCore
from ppacer.scheduler.reads import RunView, seconds_between

if TYPE_CHECKING:
    from ppacer.api import original_ui as ui
else:
    ui = lazy_module("ppacer.api.original_ui")  # the Go UI's answers: loaded on its first call

__all__ = ["dagrun_details", "dagrun_latest", "dagrun_stats", "dagrun_task_details"]

# Log records sent with a run's details at most, per attempt.
_MAX_RECORDS = 100_000
_COUNTED = ("success", "failed", "scheduled", "running")


class _Presenter:
    """The shapes of one answer (one zone, one "now")."""

    def __init__(self, scheduler: SchedulerCore) -> None:
        self.scheduler = scheduler
        self.zone = ZoneInfo(scheduler.config.timezone)
        self.now: datetime = scheduler.clock.now()

    def ts(self, stored: str | None) -> ui.GoTimestampOut:
        return ui.GoTimestampOut.model_validate(ui_timestamp(stored, self.zone, self.now))

    def duration(self, start: str | None, end: str | None) -> str:
        return go_duration(seconds_between(start, end) or 0.0)

    def logs(self, lines: list[TaskLogLine]) -> ui.UiTaskLogsOut:
        records = [
            ui.UiLogRecordOut(
                insertTs=self.ts(r.insert_ts),
                level=r.level,
                message=r.message,
                attributesJson=json.dumps(r.attributes, sort_keys=True, separators=(",", ":")),
            )
            for r in lines
        ]
        return ui.UiTaskLogsOut(
            logRecordsCount=len(records), loadedRecords=len(records), logRecords=records
        )

    def tasks(self, view: RunView, *, with_logs: bool) -> list[ui.UiTaskOut]:
        reads = self.scheduler.reads
        sources = reads.task_sources(view.run, {a.task_id for a in view.attempts})
        out = []
        for a in view.attempts:
            src: TaskRow | None = sources.get(a.task_id)
            lines = (
                reads.log_lines(view.run, a.task_id, a.retry, limit=_MAX_RECORDS)
                if with_logs
                else []
            )
            out.append(
                ui.UiTaskOut(
                    taskId=a.task_id,
                    retry=a.retry,
                    insertTs=self.ts(a.insert_ts),
                    taskNotStarted=False,
                    status=str(a.status),
                    taskPosition=ui.UiTaskPosOut(
                        depth=src.pos_depth if src else 0, width=src.pos_width if src else 0
                    ),
                    duration=self.duration(a.insert_ts, a.status_update_ts),
                    configJson=src.config if src else "{}",
                    taskLogs=self.logs(lines),
                    taskTypeName=src.type_name if src else "",
                    taskError=a.error,
                )
            )
        for task_id in view.not_started:
            assert view.dag is not None
            info = view.dag.tasks[task_id]
            out.append(
                ui.UiTaskOut(
                    taskId=task_id,
                    retry=-1,
                    insertTs=self.ts(None),
                    taskNotStarted=True,
                    status="",
                    taskPosition=ui.UiTaskPosOut(depth=info.depth, width=info.width),
                    duration="0s",
                    configJson=info.config.to_json(),
                    taskLogs=self.logs([]),
                )
            )
        out.sort(key=lambda t: (t.taskPosition.depth, t.taskPosition.width, t.retry))
        return out


def dagrun_stats(scheduler: SchedulerCore) -> ui.UiStatsOut:
    """Runs and task attempts by exact status, and queue lengths."""
    runs, tasks = scheduler.reads.status_counts()
    stats = scheduler.stats()
    return ui.UiStatsOut(
        dagruns=ui.RunCountsOut(**{k: runs.get(k.upper(), 0) for k in _COUNTED}),
        dagrunTasks=ui.RunCountsOut(**{k: tasks.get(k.upper(), 0) for k in _COUNTED}),
        dagrunQueueLen=stats.dag_run_queue,
        taskSchedulerQueueLen=stats.ready,
        goroutinesNum=threading.active_count(),
    )


def dagrun_latest(scheduler: SchedulerCore, n: int) -> list[ui.UiLatestRunOut]:
    """The ``n`` latest runs, newest first, with how many of their tasks succeeded."""
    show = _Presenter(scheduler)
    runs = scheduler.reads.latest_runs(n)
    counts = scheduler.reads.task_counts([r.run_id for r in runs])
    out = []
    for run in runs:
        dag = scheduler.registry.get(run.dag_id)
        by_status = counts.get(run.run_id, {})
        out.append(
            ui.UiLatestRunOut(
                runId=run.run_id,
                dagId=run.dag_id,
                execTs=show.ts(run.exec_ts),
                insertTs=show.ts(run.insert_ts),
                status=str(run.status),
                statusUpdateTs=show.ts(run.status_update_ts),
                duration=show.duration(run.insert_ts, run.status_update_ts),
                taskNum=len(dag.tasks) if dag is not None else sum(by_status.values()),
                taskCompletedNum=by_status.get(str(TaskStatus.SUCCESS), 0),
            )
        )
    return out


def dagrun_details(scheduler: SchedulerCore, run_id: int) -> ui.UiRunDetailsOut:
    """A run with every task attempt (and the tasks not started), configs and logs."""
    show = _Presenter(scheduler)
    view = scheduler.reads.run_view(run_id)
    run = view.run
    return ui.UiRunDetailsOut(
        runId=run.run_id,
        dagId=run.dag_id,
        execTs=show.ts(run.exec_ts),
        execTsRaw=run.exec_ts,
        status=str(run.status),
        duration=show.duration(run.insert_ts, run.status_update_ts),
        tasks=show.tasks(view, with_logs=True),
    )


def dagrun_task_details(
    scheduler: SchedulerCore, run_id: int, task_id: str, retry: int
) -> ui.UiTaskDetailsOut:
    """One attempt of a task (the asked ``retry``), with its logs and the source that ran."""
    show = _Presenter(scheduler)
    view = scheduler.reads.run_view(run_id)
    for entry in show.tasks(view, with_logs=False):
        if entry.taskId == task_id and entry.retry == retry:
            source = scheduler.reads.task_sources(view.run, [task_id]).get(task_id)
            lines = scheduler.reads.log_lines(view.run, task_id, retry, limit=_MAX_RECORDS)
            return ui.UiTaskDetailsOut(
                **entry.model_dump(exclude={"taskLogs"}),
                taskLogs=show.logs(lines),
                taskBodySource=source.body_source if source else "",
                dagId=view.run.dag_id,
                runId=view.run.run_id,
            )
    raise NotFoundError(f"retry: DAG run {run_id} has no attempt {retry} of task {task_id!r}")
