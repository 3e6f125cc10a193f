"""The one adapter between HTTP and the API's handlers, driven by the route table.

For each route of :data:`ppacer.api.routes.ROUTES` it reads the body (bounded
by ``max_request_bytes``: past it a 413, read no further), parses it with the
one strict JSON parser, validates body, query and path parameters with the
route's models, calls the handler with a :class:`Call`, and serialises what
the handler returns: an answer model, a wire dataclass (``to_json()``), a list
of those, ``None`` (200 with an empty body, as the original answers) or a
ready ``Response``. A :class:`~ppacer.errors.PpacerError` becomes its
``http_status`` with the API's error shape; anything else is logged and a 500
without a traceback. Validation and the error mapping are written only here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute

from ppacer.api.checked import WireInput
from ppacer.api.models import ACTOR_HEADER
from ppacer.api.routes import ROUTES, Route
from ppacer.api.strictjson import JsonInputError, loads_strict
from ppacer.errors import InvalidInputError, PpacerError
from ppacer.scheduler.dbgate import describe, is_unavailable

__all__ = [
    "Call",
    "Forwarder",
    "Handler",
    "RequestTooLargeError",
    "api_routes",
    "error_response",
    "http_error",
]

log = logging.getLogger("ppacer.scheduler")

_B = TypeVar("_B")
_Q = TypeVar("_Q")
_P = TypeVar("_P")


@dataclass(frozen=True, slots=True)
class Call(Generic[_B, _Q, _P]):
    """A validated request: its body, query and path models (None where the route has none)."""

    body: _B
    query: _Q
    path: _P
    request: Request

    @property
    def actor(self) -> str:
        """Who asks: the body's ``actor``, else the ``X-Ppacer-Actor`` header, else "api"."""
        given = getattr(self.body, "actor", None)
        return given or self.request.headers.get(ACTOR_HEADER) or "api"

    async def is_gone(self) -> bool:
        """Whether the client hung up (a long poll that gave up while it waited)."""
        return await self.request.is_disconnected()


Handler = Callable[[Call[Any, Any, Any]], Awaitable[Any]]


class Forwarder(Protocol):
    """Where calls go while this scheduler does not answer them itself (a standby)."""

    def applies(self) -> bool:
        """Whether calls are forwarded now."""

    async def forward(self, request: Request) -> Response | None:
        """The answer to ``request`` from elsewhere (None: answer it here after all)."""


#: Routes a standby answers itself (its own health and metrics).
_OWN_ROUTES = frozenset({"healthz", "metrics"})


class RequestTooLargeError(PpacerError):
    """The request body is larger than the scheduler accepts."""

    http_status = 413


def error_response(status: int, error: str, detail: Any = None) -> JSONResponse:
    """The one error shape of the API: ``{"error": ..., "detail": ...}``."""
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


async def http_error(_request: Request, exc: Exception) -> Response:
    """Unknown paths and methods get the API's error shape too."""
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail)


def api_routes(
    handlers: Mapping[str, Handler], max_request_bytes: int, forwarder: Forwarder | None = None
) -> list[StarletteRoute]:
    """A Starlette route per route of the table, each calling its handler through the adapter.

    While ``forwarder`` applies, calls (but health and metrics) go to it instead.

    Raises ``LookupError`` when a route of the table has no handler (or a
    handler no route), so an incomplete app never starts.
    """
    missing = sorted(set(ROUTES) - set(handlers))
    extra = sorted(set(handlers) - set(ROUTES))
    if missing or extra:
        raise LookupError(f"routes without a handler: {missing}; handlers without a route: {extra}")
    return [
        StarletteRoute(
            route.path,
            _endpoint(
                route,
                handlers[route.name],
                max_request_bytes,
                None if route.name in _OWN_ROUTES else forwarder,
            ),
            methods=[route.method],
            name=route.name,
        )
        for route in ROUTES.values()
    ]


def _endpoint(
    route: Route, handler: Handler, max_request_bytes: int, forwarder: Forwarder | None
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if forwarder is not None and forwarder.applies():
            forwarded = await forwarder.forward(request)
            if forwarded is not None:
                return forwarded
        try:
            body = await _body(request, route, max_request_bytes) if route.body_name else None
            query = (
                _params(route, "query", request.query_params, route.wire_query)
                if route.query_name
                else None
            )
            path = _params(route, "params", request.path_params) if route.params_name else None
            result = await handler(Call(body, query, path, request))
        except PpacerError as exc:
            return error_response(exc.http_status, str(exc), getattr(exc, "detail", None))
        except ClientDisconnect:
            # The client hung up before its whole request came (or was cut off as too
            # slow): nothing was done, and nobody is there to answer.
            log.debug("%s %s: the client disconnected", request.method, request.url.path)
            return error_response(400, "the client disconnected before its request was complete")
        except Exception as exc:
            if is_unavailable(exc):  # a read while the database is away: ask again later
                return error_response(
                    503, f"the scheduler's database is unavailable: {describe(exc)}"
                )
            log.exception("%s %s failed", request.method, request.url.path)
            return error_response(500, "internal error; see the scheduler's log")
        return _serialise(result)

    return endpoint


async def _body(request: Request, route: Route, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(f"body: larger than the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError(f"body: larger than the limit of {limit} bytes")
        chunks.append(chunk)
    try:
        data = loads_strict(b"".join(chunks))
    except JsonInputError as exc:
        raise InvalidInputError(str(exc) if exc.field else f"body: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInputError("body: expected a JSON object")
    if route.wire_body is not None:
        found = route.wire_body.check(data)
        if found is not None:
            return found
        return route.wire_body.from_valid(_validate(route, "body", data).model_dump())
    return _validate(route, "body", data)


def _params(
    route: Route,
    part: Literal["query", "params"],
    given: Mapping[str, Any],
    wire: type[WireInput] | None = None,
) -> Any:
    data = dict(given)
    if wire is not None:
        found = wire.check(data)
        if found is not None:
            return found
        return wire.from_valid(_validate(route, part, data).model_dump())
    return _validate(route, part, data)


def _validate(route: Route, part: Literal["body", "query", "params"], data: Any) -> Any:
    """``data`` validated by the route's model of ``part`` (pydantic, loaded on first use)."""
    from pydantic import ValidationError

    from ppacer.api.inputs import describe_validation_error, validation_detail

    model = route.model(part)
    assert model is not None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(describe_validation_error(exc), validation_detail(exc)) from None


def _is_model(value: Any) -> bool:
    """Whether ``value`` is an answer model (pydantic), not a wire dataclass."""
    return hasattr(value, "model_dump_json")


def _json(value: Any) -> Any:
    if _is_model(value):
        return value.model_dump(mode="json", by_alias=True)
    return value.to_json()


def _serialise(result: Any) -> Response:
    if result is None:
        return Response(status_code=200)
    if isinstance(result, Response):
        return result
    if isinstance(result, list):
        return JSONResponse([_json(item) for item in result])
    if _is_model(result):
        return Response(result.model_dump_json(by_alias=True), media_type="application/json")
    return JSONResponse(result.to_json())
