"""The one route table: the contract of the HTTP API, shared by server, client and document.

Each route names its method and path (the original ppacer's, so its clients
work against this scheduler), the models that validate its body, query and path
parameters, and the model of its answer. The server's one adapter
(:mod:`ppacer.server.adapter`) validates and serialises with exactly these
models, the OpenAPI document (:mod:`ppacer.api.openapi`) is generated from them,
and the client (:mod:`ppacer.api.client`) builds its URLs with
:meth:`Route.url` and reads its answers with them: the contract is written once.

Models are named (``answer_name="schemas.TriggerOut"``: a module of
:mod:`ppacer.api`, a class) and imported on first use (:meth:`Route.model`, or
the properties ``answer``, ``body``, ``query``, ``params``): a scheduler that only serves
executors never loads pydantic. The executors' routes also name a checked wire
type (:mod:`ppacer.api.checked`) that reads the common, valid request by hand;
whatever it is not sure of goes to the route's model, which decides.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from ppacer.api import checked

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["ROUTES", "Route", "model_named"]

ModelPart = Literal["answer", "body", "query", "params", "error_answer"]


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: its name in code, method, path template and the models of its contract."""

    name: str
    method: str
    path: str
    summary: str
    tag: str
    # The 200 answer's model (None: an empty body); ``answer_is_list``: a JSON array of it.
    answer_name: str | None = None
    answer_is_list: bool = False
    # The 200 answer's media type when it is not JSON (``answer`` is then None).
    answer_media: str | None = None
    body_name: str | None = None
    query_name: str | None = None
    params_name: str | None = None
    # Error statuses it may answer (401 is added when a token is required), and the
    # model of their body when it is not the API's error shape (``ErrorOut``).
    errors: tuple[int, ...] = (400,)
    error_answer_name: str | None = None
    # Answers without a body besides 200 (e.g. 204 from a poll that found nothing).
    no_content: tuple[int, ...] = ()
    description: str = ""
    # Served without the API token (health probes).
    public: bool = False
    # The executors' hot path: the body or query read by hand (the model decides the rest).
    wire_body: type[checked.WireInput] | None = None
    wire_query: type[checked.WireInput] | None = None

    def url(self, **params: object) -> str:
        """Fill the path template's ``{name}`` parts (URL-quoted)."""
        path = self.path
        for key, value in params.items():
            path = path.replace("{" + key + "}", quote(str(value), safe=""))
        return path

    def model(self, part: ModelPart) -> type[BaseModel] | None:
        """The model of ``part`` (imported on first use), or None if the route has none."""
        name: str | None = getattr(self, f"{part}_name")
        return None if name is None else model_named(name)

    @property
    def answer(self) -> type[BaseModel] | None:
        """The 200 answer's model (imported on first use)."""
        return self.model("answer")

    @property
    def body(self) -> type[BaseModel] | None:
        """The body's model (imported on first use)."""
        return self.model("body")

    @property
    def query(self) -> type[BaseModel] | None:
        """The query parameters' model (imported on first use)."""
        return self.model("query")

    @property
    def params(self) -> type[BaseModel] | None:
        """The path parameters' model (imported on first use)."""
        return self.model("params")

    @property
    def error_answer(self) -> type[BaseModel] | None:
        """The error answers' model when it is not ``ErrorOut`` (imported on first use)."""
        return self.model("error_answer")


@cache
def model_named(name: str) -> Any:
    """The model ``"module.Class"`` of :mod:`ppacer.api` (imported on first use)."""
    module, _, cls = name.partition(".")
    return getattr(importlib.import_module(f"ppacer.api.{module}"), cls)


_ALL = (
    # The original protocol.
    Route(
        "pop_task",
        "GET",
        "/dag/task/pop",
        "Take the next ready task attempt (long poll with wait_s)",
        "executor",
        answer_name="schemas.TaskToExecOut",
        query_name="params.PopQuery",
        no_content=(204,),
        description="204 when nothing became ready within `wait_s` seconds.",
        wire_query=checked.PopQuery,
    ),
    Route(
        "update_task_status",
        "POST",
        "/dag/task/update",
        "Report a task attempt's status",
        "executor",
        body_name="inputs.TaskStatusUpdate",
        errors=(400, 404, 409),
        description="200 with an empty body; 409 for a stale attempt or an illegal change.",
        wire_body=checked.StatusUpdate,
    ),
    Route(
        "trigger_dag_run",
        "POST",
        "/dag/run/trigger",
        "Run a DAG now (or for execTs), with parameters",
        "runs",
        answer_name="schemas.TriggerOut",
        body_name="inputs.DagRunTriggerInput",
        errors=(400, 404, 409),
    ),
    Route(
        "restart_dag_run",
        "POST",
        "/dag/run/restart",
        "Restart a FAILED run",
        "runs",
        answer_name="schemas.RestartOut",
        body_name="inputs.DagRunRestartInput",
        errors=(400, 404, 409),
    ),
    Route(
        "state",
        "GET",
        "/state",
        "The scheduler's state",
        "scheduler",
        answer_name="schemas.StateOut",
        errors=(),
    ),
    # Extensions over the original protocol.
    Route(
        "register_executor",
        "POST",
        "/executor/register",
        "An executor says which queues it serves and which code versions it has",
        "executor",
        answer_name="schemas.RegistrationOut",
        body_name="inputs.ExecutorRegistration",
        errors=(400, 409),
        description="409 when the executor speaks a protocol version this scheduler lacks.",
        wire_body=checked.Registration,
    ),
    Route(
        "executor_heartbeat",
        "POST",
        "/executor/heartbeat",
        "An executor is alive; renew its leases",
        "executor",
        answer_name="schemas.HeartbeatOut",
        body_name="inputs.HeartbeatInput",
        wire_body=checked.Heartbeat,
    ),
    Route(
        "ship_task_logs",
        "POST",
        "/dag/task/logs",
        "Store task log records an executor ships (each stored once, by attempt and seq)",
        "executor",
        answer_name="schemas.TaskLogsStoredOut",
        body_name="inputs.TaskLogsInput",
        errors=(400, 409),
        description="409 when the scheduler keeps no logs DB.",
        wire_body=checked.LogShipment,
    ),
    Route(
        "pop_tasks",
        "GET",
        "/dag/task/pop/batch",
        "Take up to `max` ready task attempts",
        "executor",
        answer_name="schemas.BatchPopOut",
        query_name="params.PopBatchQuery",
        wire_query=checked.PopBatchQuery,
    ),
    Route(
        "update_task_statuses",
        "POST",
        "/dag/task/update/batch",
        "Report several task attempts at once",
        "executor",
        answer_name="schemas.BatchUpdateOut",
        body_name="inputs.TaskStatusUpdates",
        wire_body=checked.StatusUpdates,
    ),
    Route(
        "report_and_pop",
        "POST",
        "/dag/task/update/pop",
        "Report task attempts and take up to `max` ready attempts, in one round trip",
        "executor",
        answer_name="schemas.ReportAndPopOut",
        body_name="inputs.ReportAndPopInput",
        description=(
            "The reports as `/dag/task/update/batch` takes them, then up to `max` attempts "
            "as `/dag/task/pop/batch` hands them out, without waiting: an attempt a report "
            "made ready goes to this call before any waiting long poll."
        ),
        wire_body=checked.ReportAndPopBody,
    ),
    Route(
        "pause_dag",
        "POST",
        "/dag/pause",
        "Pause a DAG (no new scheduled runs)",
        "dags",
        answer_name="schemas.DagPausedOut",
        body_name="inputs.DagInput",
        errors=(400, 404),
    ),
    Route(
        "unpause_dag",
        "POST",
        "/dag/unpause",
        "Unpause a DAG",
        "dags",
        answer_name="schemas.DagPausedOut",
        body_name="inputs.DagInput",
        errors=(400, 404),
    ),
    Route(
        "backfill_dag",
        "POST",
        "/dag/backfill",
        "Run a DAG's schedule points in [from, to]",
        "dags",
        answer_name="schemas.BackfillOut",
        body_name="inputs.BackfillInput",
        errors=(400, 404, 409),
    ),
    Route(
        "get_backfill",
        "GET",
        "/dag/backfill/{backfillId}",
        "A backfill's progress",
        "dags",
        answer_name="schemas.BackfillOut",
        params_name="params.BackfillIdPath",
        errors=(400, 404),
    ),
    Route(
        "clear_task",
        "POST",
        "/dag/run/task/clear",
        "Run a task and its downstream again in a finished run",
        "runs",
        answer_name="schemas.TaskClearedOut",
        body_name="inputs.TaskActionInput",
        errors=(400, 404, 409),
    ),
    Route(
        "mark_task",
        "POST",
        "/dag/run/task/mark",
        "Set a task's status (SUCCESS or FAILED) by hand",
        "runs",
        answer_name="schemas.TaskMarkedOut",
        body_name="inputs.TaskMarkInput",
        errors=(400, 404, 409),
    ),
    Route(
        "schedule_preview",
        "GET",
        "/dag/schedule/{dagId}",
        "A DAG's next schedule points",
        "dags",
        answer_name="schemas.SchedulePreviewOut",
        params_name="params.DagIdPath",
        query_name="params.SchedulePreviewQuery",
        errors=(400, 404),
    ),
    Route(
        "dag_run_history",
        "GET",
        "/dag/run/history/{runId}",
        "Who did what to a run, and when",
        "runs",
        answer_name="schemas.RunEventListOut",
        params_name="params.RunIdPath",
        query_name="params.PageQuery",
        errors=(400, 404),
    ),
    # UI data, as in the original.
    Route(
        "ui_dagrun_stats",
        "GET",
        "/ui/dagrun/stats",
        "Runs and tasks by status, queue lengths (the original's UI data)",
        "ui data",
        answer_name="original_ui.UiStatsOut",
        errors=(),
    ),
    Route(
        "ui_dagrun_latest",
        "GET",
        "/ui/dagrun/latest/{n}",
        "The latest n runs (the original's UI data)",
        "ui data",
        answer_name="original_ui.UiLatestRunOut",
        answer_is_list=True,
        params_name="params.LatestRunsPath",
    ),
    Route(
        "ui_dagrun_task_details",
        "GET",
        "/ui/dagrun/task/{runId}/{taskId}/{retry}",
        "One task attempt with its source and logs (the original's UI data)",
        "ui data",
        answer_name="original_ui.UiTaskDetailsOut",
        params_name="params.TaskAttemptPath",
        errors=(400, 404),
    ),
    Route(
        "ui_dagrun_details",
        "GET",
        "/ui/dagrun/{runId}",
        "A run with its tasks and logs (the original's UI data)",
        "ui data",
        answer_name="original_ui.UiRunDetailsOut",
        params_name="params.RunIdPath",
        errors=(400, 404),
    ),
    # Reads of the API and the command line; lists are paginated (limit, offset).
    Route(
        "list_dags",
        "GET",
        "/dag/list",
        "DAGs by id, with pause state, next point and latest run",
        "dags",
        answer_name="schemas.DagListOut",
        query_name="params.PageQuery",
    ),
    Route(
        "get_dag",
        "GET",
        "/dag/details/{dagId}",
        "A DAG: its tasks in graph order and its latest runs",
        "dags",
        answer_name="schemas.DagDetailsOut",
        params_name="params.DagIdPath",
        errors=(400, 404),
    ),
    Route(
        "list_dag_runs",
        "GET",
        "/dag/run/list",
        "DAG runs, newest first",
        "runs",
        answer_name="schemas.DagRunListOut",
        query_name="params.DagRunListQuery",
    ),
    Route(
        "get_dag_run",
        "GET",
        "/dag/run/details/{runId}",
        "A DAG run with its parameters and every task attempt",
        "runs",
        answer_name="schemas.DagRunDetailsOut",
        params_name="params.RunIdPath",
        errors=(400, 404),
    ),
    Route(
        "get_task_logs",
        "GET",
        "/dag/run/task/logs/{runId}/{taskId}",
        "Log records of a task attempt (the latest unless `retry` is given)",
        "runs",
        answer_name="schemas.TaskLogsOut",
        params_name="params.TaskLogsPath",
        query_name="params.TaskLogsQuery",
        errors=(400, 404),
    ),
    Route(
        "search_task_logs",
        "GET",
        "/dag/run/task/logs/search",
        "Find task log lines by their words, across runs, newest first",
        "runs",
        answer_name="schemas.LogSearchOut",
        query_name="params.LogSearchQuery",
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
        answer_name="schemas.ExecutorListOut",
        query_name="params.PageQuery",
    ),
    # Observability.
    Route(
        "healthz",
        "GET",
        "/healthz",
        "Health: databases reachable, loops alive",
        "observability",
        answer_name="schemas.HealthOut",
        errors=(503,),
        error_answer_name="schemas.HealthOut",
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
