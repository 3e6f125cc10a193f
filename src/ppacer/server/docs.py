"""``/openapi.json`` (built from the route table on first request) and ``/docs`` (Swagger UI).

Swagger UI is served from files inside the package (no CDN; see
``ppacer/api/static/VERSION`` for the vendored version and its licence files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

import ppacer.api
from ppacer.scheduler.config import Config

__all__ = ["STATIC", "docs_routes"]

#: The vendored Swagger UI.
STATIC = Path(ppacer.api.__file__).parent / "static"

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


def docs_routes(config: Config) -> list[BaseRoute]:
    """``/openapi.json``, ``/docs`` with its static files, and ``/favicon.ico``."""
    document: dict[str, Any] = {}

    async def openapi_json(_request: Request) -> Response:
        if not document:
            # Imported and built on first use: the JSON-schema machinery costs start-up time.
            from ppacer.api.openapi import build_openapi

            document.update(
                build_openapi(
                    token_required=bool(config.api_token), max_pop_wait_s=config.max_pop_wait_s
                )
            )
        return JSONResponse(document)

    async def docs(_request: Request) -> Response:
        return HTMLResponse(_DOCS_PAGE, headers=_DOCS_HEADERS)

    async def favicon(_request: Request) -> Response:
        return RedirectResponse("/ui/static/favicon.svg", status_code=301)

    return [
        Route("/openapi.json", openapi_json, methods=["GET"], name="openapi"),
        Route("/docs", docs, methods=["GET"], name="docs"),
        Mount("/docs/static", StaticFiles(directory=STATIC), name="docs_static"),
        Route("/favicon.ico", favicon, methods=["GET"], name="favicon"),
    ]
