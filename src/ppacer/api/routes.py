"""The one route table: the contract of the HTTP API, shared by server, client and document.

Each route names its method and path (the original ppacer's, so its clients
work against this scheduler), the models that validate its body, query and path
parameters, and the model of its answer. The server's one adapter
(:mod:`ppacer.server.adapter`) validates and serialises with exactly these
models, the OpenAPI document (:mod:`ppacer.api.openapi`) is generated from them,
and the client (:mod:`ppacer.api.client`) builds its URLs with
:meth:`Route.url` and reads its answers with them: the contract is written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from pydantic import BaseModel

from ppacer.api import models as m
from ppacer.api import original_ui as ui
from ppacer.api import params
from ppacer.api import schemas as s

__all__ = ["ROUTES", "Route"]


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: its name in code, method, path template and the models of its contract."""

    name: str
    method: str
    path: str
    summary: str
    tag: str
    # The 200 answer's model (None: an empty body); ``answer_is_list``: a JSON array of it.
    answer: type[BaseModel] | None = None
    answer_is_list: bool = False
    # The 200 answer's media type when it is not JSON (``answer`` is then None).
    answer_media: str | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    params: type[BaseModel] | None = None
    # Error statuses it may answer (401 is added when a token is required), and the
    # model of their body when it is not the API's error shape (``ErrorOut``).
    errors: tuple[int, ...] = (400,)
    error_answer: type[BaseModel] | None = None
    # Answers without a body besides 200 (e.g. 204 from a poll that found nothing).
    no_content: tuple[int, ...] = ()
    description: str = ""
    # Served without the API token (health probes).
    public: bool = False

    def url(self, **params: object) -> str:
        """Fill the path template's ``{name}`` parts (URL-quoted)."""
        path = self.path
        for key, value in params.items():
            path = path.replace("{" + key + "}", quote(str(value), safe=""))
        return path


_ALL = (
    # The original protocol.
    Route(
        "pop_task",
        "GET",
        "/dag/task/pop",
        "Take the next ready task attempt (long poll with wait_s)",
        "executor",
        answer=s.TaskToExecOut,
        query=params.PopQuery,
        no_content=(204,),
        description="204 when nothing became ready within `wait_s` seconds.",
    ),
    Route(
        "update_task_status",
        "POST",
        "/dag/task/update",
        "Report a task attempt's status",
        "executor",
        body=m.TaskStatusUpdate,
        errors=(400, 404, 409),
        description="200 with an empty body; 409 for a stale attempt or an illegal change.",
    ),
    Route(
        "trigger_dag_run",
        "POST",
        "/dag/run/trigger",
        "Run a DAG now (or for execTs), with parameters",
        "runs",
        answer=s.TriggerOut,
        body=m.DagRunTriggerInput,
        errors=(400, 404, 409),
    ),
    Route(
        "restart_dag_run",
        "POST",
        "/dag/run/restart",
        "Restart a FAILED run",
        "runs",
        answer=s.RestartOut,
        body=m.DagRunRestartInput,
        errors=(400, 404, 409),
    ),
    Route("state", "GET", "/state", "The scheduler's state", "scheduler", s.StateOut, errors=()),
    # Extensions over the original protocol.
    Route(
        "register_executor",
        "POST",
        "/executor/register",
        "An executor says which queues it serves and which code versions it has",
        "executor",
        answer=s.RegistrationOut,
        body=m.ExecutorRegistration,
        errors=(400, 409),
        description="409 when the executor speaks a protocol version this scheduler lacks.",
    ),
    Route(
        "executor_heartbeat",
        "POST",
        "/executor/heartbeat",
        "An executor is alive; renew its leases",
        "executor",
        answer=s.HeartbeatOut,
        body=m.HeartbeatInput,
    ),
    Route(
        "ship_task_logs",
        "POST",
        "/dag/task/logs",
        "Store task log records an executor ships (each stored once, by attempt and seq)",
        "executor",
        answer=s.TaskLogsStoredOut,
        body=m.TaskLogsInput,
        errors=(400, 409),
        description="409 when the scheduler keeps no logs DB.",
    ),
    Route(
        "pop_tasks",
        "GET",
        "/dag/task/pop/batch",
        "Take up to `max` ready task attempts",
        "executor",
        answer=s.BatchPopOut,
        query=params.PopBatchQuery,
    ),
    Route(
        "update_task_statuses",
        "POST",
        "/dag/task/update/batch",
        "Report several task attempts at once",
        "executor",
        answer=s.BatchUpdateOut,
        body=m.TaskStatusUpdates,
    ),
    Route(
        "report_and_pop",
        "POST",
        "/dag/task/update/pop",
        "Report task attempts and take up to `max` ready attempts, in one round trip",
        "executor",
        answer=m.ReportAndPopOut,
        body=m.ReportAndPopInput,
        description=(
            "The reports as `/dag/task/update/batch` takes them, then up to `max` attempts "
            "as `/dag/task/pop/batch` hands them out, without waiting: an attempt a report "
            "made ready goes to this call before any waiting long poll."
        ),
    ),
    Route(
        "pause_dag",
        "POST",
        "/dag/pause",
        "Pause a DAG (no new scheduled runs)",
        "dags",
        answer=s.DagPausedOut,
        body=m.DagInput,
        errors=(400, 404),
    ),
    Route(
        "unpause_dag",
        "POST",
        "/dag/unpause",
        "Unpause a DAG",
        "dags",
        answer=s.DagPausedOut,
        body=m.DagInput,
        errors=(400, 404),
    ),
    Route(
        "backfill_dag",
        "POST",
        "/dag/backfill",
        "Run a DAG's schedule points in [from, to]",
        "dags",
        answer=s.BackfillOut,
        body=m.BackfillInput,
        errors=(400, 404, 409),
    ),
    Route(
        "get_backfill",
        "GET",
        "/dag/backfill/{backfillId}",
        "A backfill's progress",
        "dags",
        answer=s.BackfillOut,
        params=params.BackfillIdPath,
        errors=(400, 404),
    ),
    Route(
        "clear_task",
        "POST",
        "/dag/run/task/clear",
        "Run a task and its downstream again in a finished run",
        "runs",
        answer=s.TaskClearedOut,
        body=m.TaskActionInput,
        errors=(400, 404, 409),
    ),
    Route(
        "mark_task",
        "POST",
        "/dag/run/task/mark",
        "Set a task's status (SUCCESS or FAILED) by hand",
        "runs",
        answer=s.TaskMarkedOut,
        body=m.TaskMarkInput,
        errors=(400, 404, 409),
    ),
    Route(
        "schedule_preview",
        "GET",
        "/dag/schedule/{dagId}",
        "A DAG's next schedule points",
        "dags",
        answer=s.SchedulePreviewOut,
        params=params.DagIdPath,
        query=params.SchedulePreviewQuery,
        errors=(400, 404),
    ),
    Route(
        "dag_run_history",
        "GET",
        "/dag/run/history/{runId}",
        "Who did what to a run, and when",
        "runs",
        answer=s.RunEventListOut,
        params=params.RunIdPath,
        query=params.PageQuery,
        errors=(400, 404),
    ),
    # UI data, as in the original.
    Route(
        "ui_dagrun_stats",
        "GET",
        "/ui/dagrun/stats",
        "Runs and tasks by status, queue lengths (the original's UI data)",
        "ui data",
        answer=ui.UiStatsOut,
        errors=(),
    ),
    Route(
        "ui_dagrun_latest",
        "GET",
        "/ui/dagrun/latest/{n}",
        "The latest n runs (the original's UI data)",
        "ui data",
        answer=ui.UiLatestRunOut,
        answer_is_list=True,
        params=params.LatestRunsPath,
    ),
    Route(
        "ui_dagrun_task_details",
        "GET",
        "/ui/dagrun/task/{runId}/{taskId}/{retry}",
        "One task attempt with its source and logs (the original's UI data)",
        "ui data",
        answer=ui.UiTaskDetailsOut,
        params=params.TaskAttemptPath,
        errors=(400, 404),
    ),
    Route(
        "ui_dagrun_details",
        "GET",
        "/ui/dagrun/{runId}",
        "A run with its tasks and logs (the original's UI data)",
        "ui data",
        answer=ui.UiRunDetailsOut,
        params=params.RunIdPath,
        errors=(400, 404),
    ),
    # Reads of the API and the command line; lists are paginated (limit, offset).
    Route(
        "list_dags",
        "GET",
        "/dag/list",
        "DAGs by id, with pause state, next point and latest run",
        "dags",
        answer=s.DagListOut,
        query=params.PageQuery,
    ),
    Route(
        "get_dag",
        "GET",
        "/dag/details/{dagId}",
        "A DAG: its tasks in graph order and its latest runs",
        "dags",
        answer=s.DagDetailsOut,
        params=params.DagIdPath,
        errors=(400, 404),
    ),
    Route(
        "list_dag_runs",
        "GET",
        "/dag/run/list",
        "DAG runs, newest first",
        "runs",
        answer=s.DagRunListOut,
        query=params.DagRunListQuery,
    ),
    Route(
        "get_dag_run",
        "GET",
        "/dag/run/details/{runId}",
        "A DAG run with its parameters and every task attempt",
        "runs",
        answer=s.DagRunDetailsOut,
        params=params.RunIdPath,
        errors=(400, 404),
    ),
    Route(
        "get_task_logs",
        "GET",
        "/dag/run/task/logs/{runId}/{taskId}",
        "Log records of a task attempt (the latest unless `retry` is given)",
        "runs",
        answer=s.TaskLogsOut,
        params=params.TaskLogsPath,
        query=params.TaskLogsQuery,
        errors=(400, 404),
    ),
    Route(
        "search_task_logs",
        "GET",
        "/dag/run/task/logs/search",
        "Find task log lines by their words, across runs, newest first",
        "runs",
        answer=s.LogSearchOut,
        query=params.LogSearchQuery,
        description="Full-text search (SQLite FTS5 or PostgreSQL text search). Every word of "
        '`q` must occur; `"quoted words"` in that order; `conn*` matches words starting '
        "with conn. Filters: DAG, task, lowest level, time range [from, to). Each line names "
        "its run and its number in the attempt's log. Secrets are masked in messages.",
    ),
    Route(
        "list_executors",
        "GET",
        "/executor/list",
        "Executors heard from, most recently seen first",
        "executor",
        answer=s.ExecutorListOut,
        query=params.PageQuery,
    ),
    # Observability.
    Route(
        "healthz",
        "GET",
        "/healthz",
        "Health: databases reachable, loops alive",
        "observability",
        answer=s.HealthOut,
        errors=(503,),
        error_answer=s.HealthOut,
        public=True,
    ),
    Route(
        "metrics",
        "GET",
        "/metrics",
        "Prometheus metrics (text exposition format)",
        "observability",
        answer_media="text/plain",
        errors=(),
    ),
)

#: Every route by name.
ROUTES: dict[str, Route] = {route.name: route for route in _ALL}
