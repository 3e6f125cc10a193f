"""The API token: with ``Config.api_token`` set, every API request needs ``Bearer <token>``.

``/healthz``, the API docs and the web UI's pages (which have a login of their
own) are served without it; the original protocol's ``/ui/dagrun/...`` JSON is
API data and needs it like the rest.
"""

from __future__ import annotations

import hmac

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ppacer.api.routes import ROUTES

__all__ = ["BearerAuthMiddleware", "is_public_path"]

_PUBLIC_ROUTES = frozenset(route.path for route in ROUTES.values() if route.public)


def is_public_path(path: str) -> bool:
    """Whether ``path`` is served without the API token."""
    if path in ("/", "/docs", "/openapi.json", "/favicon.ico") or path in _PUBLIC_ROUTES:
        return True
    if path.startswith("/docs/"):
        return True
    return (path == "/ui" or path.startswith("/ui/")) and not path.startswith("/ui/dagrun/")


class BearerAuthMiddleware:
    """Refuses API requests without ``Authorization: Bearer <token>`` (401, the error shape)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        reason = "wrong API token" if given else "missing API token"
        response = JSONResponse(
            {"error": f"unauthorized: {reason}", "detail": "send Authorization: Bearer <token>"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)
