"""The OpenAPI 3.1 document of the HTTP API, generated from the one route table.

Every operation comes from :data:`ppacer.api.routes.ROUTES`: its parameters,
body and answers are the JSON schemas of the very models the server validates
and serialises with, so the document cannot drift from what the server checks.
The server serves it at ``/openapi.json`` (:mod:`ppacer.server.docs`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ppacer.api import schemas as s
from ppacer.api.routes import ROUTES, Route
from ppacer.version import __version__

__all__ = ["build_openapi"]

_ERROR_TEXT = {
    400: "Malformed input; the message names the field",
    401: "Missing or wrong API token",
    404: "Unknown DAG, run, task or backfill",
    409: "Conflicts with the current state",
    413: "The request body is larger than the scheduler accepts",
    503: "Unhealthy",
}


def _all_models() -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    out: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
    for route in ROUTES.values():
        for part in ("body", "query", "params"):
            model = route.model(part)
            if model is not None:
                out[(model, "validation")] = None
        for part in ("answer", "error_answer"):
            model = route.model(part)  # type: ignore[arg-type]
            if model is not None:
                out[(model, "serialization")] = None
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
    route: Route, refs: dict[Any, Any], components: dict[str, Any], secured: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": route.name, "summary": route.summary, "tags": [route.tag]}
    if route.description:
        out["description"] = route.description
    params: list[dict[str, Any]] = []
    path_model, query_model = route.model("params"), route.model("query")
    if path_model is not None:
        params += _parameters(path_model, "path", components)
    if query_model is not None:
        params += _parameters(query_model, "query", components)
    if params:
        out["parameters"] = params
    body_model, answer_model = route.model("body"), route.model("answer")
    if body_model is not None:
        out["requestBody"] = {
            "required": True,
            "content": _json_content(refs[(body_model, "validation")]),
        }
    responses: dict[str, Any] = {}
    if answer_model is not None:
        schema = refs[(answer_model, "serialization")]
        if route.answer_is_list:
            schema = {"type": "array", "items": schema}
        responses["200"] = {"description": "OK", "content": _json_content(schema)}
    elif route.answer_media is not None:
        content = {route.answer_media: {"schema": {"type": "string"}}}
        responses["200"] = {"description": "OK", "content": content}
    else:
        responses["200"] = {"description": "OK (no body)"}
    for code in route.no_content:
        responses[str(code)] = {"description": "No content"}
    errors = set(route.errors) | ({401} if secured and not route.public else set())
    if route.body is not None:
        errors.add(413)
    error_model = route.model("error_answer") or s.ErrorOut
    for code in sorted(errors):
        model = s.ErrorOut if code in (401, 413) else error_model
        responses[str(code)] = {
            "description": _ERROR_TEXT.get(code, "Error"),
            "content": _json_content(refs[(model, "serialization")]),
        }
    out["responses"] = responses
    if route.public:
        out["security"] = []
    return out


def build_openapi(
    *, token_required: bool = False, max_pop_wait_s: float | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a scheduler (with its token and long-poll limits)."""
    refs, top = models_json_schema(_all_models(), ref_template="#/components/schemas/{model}")
    components: dict[str, Any] = top.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES.values():
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(
            route, refs, components, token_required
        )
    if max_pop_wait_s is not None:
        for name in ("pop_task", "pop_tasks"):
            for param in paths[ROUTES[name].path]["get"].get("parameters", []):
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
