"""The OpenAPI 3.1 document of the HTTP API (``/openapi.json``) and its docs (``/docs``).

The document is built from the one route table (:mod:`ppacer.api.routes`) and
the pydantic models that validate requests (:mod:`ppacer.api.models`,
:mod:`ppacer.api.schemas`), so it describes what the server checks. ``/docs``
is Swagger UI, served from files inside the package (no CDN; see
``static/VERSION`` for the vendored version and its licence files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ppacer.api import models as m
from ppacer.api import schemas as s
from ppacer.api.routes import ROUTES
from ppacer.version import __version__

if TYPE_CHECKING:
    from ppacer.scheduler.server import Scheduler

__all__ = ["OPERATIONS", "Operation", "build_openapi", "openapi_routes"]

STATIC = Path(__file__).parent / "static"

_ERROR_TEXT = {
    400: "Malformed input; the message names the field",
    401: "Missing or wrong API token",
    404: "Unknown DAG, run, task or backfill",
    409: "Conflicts with the current state",
    503: "Unhealthy",
}


@dataclass(frozen=True, slots=True)
class Operation:
    """What one route takes and answers, for the OpenAPI document."""

    summary: str
    tag: str
    ok: type[BaseModel] | None = None
    # The 200 answer is a JSON array of ``ok``.
    ok_is_list: bool = False
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    path: type[BaseModel] | None = None
    errors: tuple[int, ...] = (400,)
    # Extra answers without a body (e.g. 204 from a poll that found nothing).
    no_content: tuple[int, ...] = ()
    description: str = ""


#: Every route of the table by name (a test checks none is missing).
OPERATIONS: dict[str, Operation] = {
    "pop_task": Operation(
        "Take the next ready task attempt (long poll with wait_s)",
        "executor",
        ok=s.TaskToExecOut,
        query=s.PopQuery,
        no_content=(204,),
        description="204 when nothing became ready within `wait_s` seconds.",
    ),
    "update_task_status": Operation(
        "Report a task attempt's status",
        "executor",
        body=m.TaskStatusUpdate,
        errors=(400, 404, 409),
        description="200 with an empty body; 409 for a stale attempt or an illegal change.",
    ),
    "trigger_dag_run": Operation(
        "Run a DAG now (or for execTs), with parameters",
        "runs",
        ok=s.TriggerOut,
        body=m.DagRunTriggerInput,
        errors=(400, 404, 409),
    ),
    "restart_dag_run": Operation(
        "Restart a FAILED run",
        "runs",
        ok=s.RestartOut,
        body=m.DagRunRestartInput,
        errors=(400, 404, 409),
    ),
    "state": Operation("The scheduler's state", "scheduler", ok=s.StateOut, errors=()),
    "executor_heartbeat": Operation(
        "An executor is alive; renew its leases",
        "executor",
        ok=s.HeartbeatOut,
        body=m.HeartbeatInput,
    ),
    "pop_tasks": Operation(
        "Take up to `max` ready task attempts",
        "executor",
        ok=s.BatchPopOut,
        query=s.PopBatchQuery,
    ),
    "update_task_statuses": Operation(
        "Report several task attempts at once",
        "executor",
        ok=s.BatchUpdateOut,
        body=m.TaskStatusUpdates,
    ),
    "pause_dag": Operation(
        "Pause a DAG (no new scheduled runs)",
        "dags",
        ok=s.DagPausedOut,
        body=m.DagInput,
        errors=(400, 404),
    ),
    "unpause_dag": Operation(
        "Unpause a DAG", "dags", ok=s.DagPausedOut, body=m.DagInput, errors=(400, 404)
    ),
    "backfill_dag": Operation(
        "Run a DAG's schedule points in [from, to]",
        "dags",
        ok=s.BackfillOut,
        body=m.BackfillInput,
        errors=(400, 404, 409),
    ),
    "get_backfill": Operation(
        "A backfill's progress",
        "dags",
        ok=s.BackfillOut,
        path=s.BackfillIdPath,
        errors=(400, 404),
    ),
    "clear_task": Operation(
        "Run a task and its downstream again in a finished run",
        "runs",
        ok=s.TaskClearedOut,
        body=m.TaskActionInput,
        errors=(400, 404, 409),
    ),
    "mark_task": Operation(
        "Set a task's status (SUCCESS or FAILED) by hand",
        "runs",
        ok=s.TaskMarkedOut,
        body=m.TaskMarkInput,
        errors=(400, 404, 409),
    ),
    "schedule_preview": Operation(
        "A DAG's next schedule points",
        "dags",
        ok=s.SchedulePreviewOut,
        path=s.DagIdPath,
        query=s.SchedulePreviewQuery,
        errors=(400, 404),
    ),
    "dag_run_history": Operation(
        "Who did what to a run, and when",
        "runs",
        ok=s.RunEventListOut,
        path=s.RunIdPath,
        query=s.PageQuery,
        errors=(400, 404),
    ),
    "ui_dagrun_stats": Operation(
        "Runs and tasks by status, queue lengths (the original's UI data)",
        "ui data",
        ok=s.UiStatsOut,
        errors=(),
    ),
    "ui_dagrun_latest": Operation(
        "The latest n runs (the original's UI data)",
        "ui data",
        ok=s.UiLatestRunOut,
        ok_is_list=True,
        path=s.LatestRunsPath,
    ),
    "ui_dagrun_task_details": Operation(
        "One task attempt with its source and logs (the original's UI data)",
        "ui data",
        ok=s.UiTaskDetailsOut,
        path=s.TaskAttemptPath,
        errors=(400, 404),
    ),
    "ui_dagrun_details": Operation(
        "A run with its tasks and logs (the original's UI data)",
        "ui data",
        ok=s.UiRunDetailsOut,
        path=s.RunIdPath,
        errors=(400, 404),
    ),
    "list_dags": Operation(
        "DAGs by id, with pause state, next point and latest run",
        "dags",
        ok=s.DagListOut,
        query=s.PageQuery,
    ),
    "get_dag": Operation(
        "A DAG: its tasks in graph order and its latest runs",
        "dags",
        ok=s.DagDetailsOut,
        path=s.DagIdPath,
        errors=(400, 404),
    ),
    "list_dag_runs": Operation(
        "DAG runs, newest first", "runs", ok=s.DagRunListOut, query=s.DagRunListQuery
    ),
    "get_dag_run": Operation(
        "A DAG run with its parameters and every task attempt",
        "runs",
        ok=s.DagRunDetailsOut,
        path=s.RunIdPath,
        errors=(400, 404),
    ),
    "get_task_logs": Operation(
        "Log records of a task attempt (the latest unless `retry` is given)",
        "runs",
        ok=s.TaskLogsOut,
        path=s.TaskLogsPath,
        query=s.TaskLogsQuery,
        errors=(400, 404),
    ),
    "list_executors": Operation(
        "Executors heard from, most recently seen first",
        "executor",
        ok=s.ExecutorListOut,
        query=s.PageQuery,
    ),
}

# Endpoints outside the route table (observability), described the same way.
_EXTRA: dict[tuple[str, str], Operation] = {
    ("/healthz", "get"): Operation(
        "Health: databases reachable, loops alive",
        "observability",
        ok=s.HealthOut,
        errors=(503,),
    ),
}


def _all_models() -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    out: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
    for op in [*OPERATIONS.values(), *_EXTRA.values()]:
        for model in (op.body, op.query, op.path):
            if model is not None:
                out[(model, "validation")] = None
        if op.ok is not None:
            out[(op.ok, "serialization")] = None
    out[(s.ErrorOut, "serialization")] = None
    return list(out)


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _parameters(
    model: type[BaseModel], where: Literal["query", "path"], components: dict[str, Any]
) -> list[dict[str, Any]]:
    schema = components[model.__name__]
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        param: dict[str, Any] = {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": prop,
        }
        if description:
            param["description"] = description
        params.append(param)
    return params


def _operation(
    name: str, op: Operation, refs: dict[Any, Any], components: dict[str, Any], secured: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": name, "summary": op.summary, "tags": [op.tag]}
    if op.description:
        out["description"] = op.description
    params: list[dict[str, Any]] = []
    if op.path is not None:
        params += _parameters(op.path, "path", components)
    if op.query is not None:
        params += _parameters(op.query, "query", components)
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": _json_content(refs[(op.body, "validation")]),
        }
    responses: dict[str, Any] = {}
    if op.ok is not None:
        schema = refs[(op.ok, "serialization")]
        if op.ok_is_list:
            schema = {"type": "array", "items": schema}
        responses["200"] = {"description": "OK", "content": _json_content(schema)}
    else:
        responses["200"] = {"description": "OK (no body)"}
    for code in op.no_content:
        responses[str(code)] = {"description": "No content"}
    errors = set(op.errors) | ({401} if secured else set())
    for code in sorted(errors):
        responses[str(code)] = {
            "description": _ERROR_TEXT.get(code, "Error"),
            "content": _json_content(refs[(s.ErrorOut, "serialization")]),
        }
    out["responses"] = responses
    return out


def build_openapi(
    *, token_required: bool = False, max_pop_wait_s: float | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a scheduler (with its token and long-poll limits)."""
    refs, top = models_json_schema(_all_models(), ref_template="#/components/schemas/{model}")
    components: dict[str, Any] = top.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for name, route in ROUTES.items():
        op = OPERATIONS.get(name)
        if op is None:
            op = Operation(name.replace("_", " "), "other", errors=(400, 404))
        method = route.method.lower()
        paths.setdefault(route.path, {})[method] = _operation(
            name, op, refs, components, token_required
        )
    for (path, method), op in _EXTRA.items():
        operation = _operation(path.strip("/"), op, refs, components, False)
        operation["security"] = []
        paths.setdefault(path, {})[method] = operation
    paths["/metrics"] = {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics (text exposition format)",
            "tags": ["observability"],
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **(
                    {
                        "401": {
                            "description": _ERROR_TEXT[401],
                            "content": _json_content(refs[(s.ErrorOut, "serialization")]),
                        }
                    }
                    if token_required
                    else {}
                ),
            },
        }
    }
    if max_pop_wait_s is not None:
        for path in (ROUTES["pop_task"].path, ROUTES["pop_tasks"].path):
            for param in paths[path]["get"].get("parameters", []):
                if param["name"] == "wait_s":
                    param["schema"]["maximum"] = max_pop_wait_s
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "ppacer scheduler API",
            "version": __version__,
            "description": (
                "The original ppacer protocol plus extensions. Every error answer is "
                '`{"error": "...", "detail": ...}`. Lists take `limit` and `offset`.'
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    if token_required:
        doc["security"] = [{"bearer": []}]
    return doc


_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>ppacer API</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-url="/openapi.json"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script src="/docs/static/docs.js"></script>
</body>
</html>
"""

_DOCS_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}


def openapi_routes(scheduler: Scheduler) -> list[BaseRoute]:
    """``/openapi.json``, and ``/docs`` with its static files."""
    document = build_openapi(
        token_required=bool(scheduler.config.api_token),
        max_pop_wait_s=scheduler.config.max_pop_wait_s,
    )

    async def openapi_json(_request: Request) -> Response:
        return JSONResponse(document)

    async def docs(_request: Request) -> Response:
        return HTMLResponse(_DOCS_PAGE, headers=_DOCS_HEADERS)

    return [
        Route("/openapi.json", openapi_json, methods=["GET"], name="openapi"),
        Route("/docs", docs, methods=["GET"], name="docs"),
        Mount("/docs/static", StaticFiles(directory=STATIC), name="docs_static"),
    ]
