"""The UI's protections: login sessions, cross-site request checks and response headers.

**Login** (only when ``Config.api_token`` is set): the login page takes the
token; a correct one gets an HTTP-only, ``SameSite=Strict`` session cookie
``ppacer_session`` = ``<expiry>.<nonce>.<HMAC-SHA256(key, expiry.nonce)>``,
where the key is derived from the token. Sessions are stateless (they survive
a scheduler restart) and all end when the token changes.

**Cross-site requests**: every state-changing request is a POST and must pass
two checks: (1) *double-submit token*: the ``ppacer_csrf`` cookie (random,
HTTP-only, ``SameSite=Strict``) must equal the ``csrf_token`` form field or the
``X-CSRF-Token`` header, which the server renders into its own pages; another
site can neither read the cookie nor the page; (2) *origin*: a request whose
``Origin`` header (or, without one, ``Sec-Fetch-Site``) says it comes from
another site is refused, whatever it carries.

**Headers**: a Content-Security-Policy allowing scripts only from the UI's own
static files (no inline scripts), ``frame-ancestors 'none'`` against
clickjacking, ``nosniff`` and no referrer sent to other sites.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SECURITY_HEADERS",
    "SESSION_COOKIE",
    "UiSecurity",
]

SESSION_COOKIE = "ppacer_session"
CSRF_COOKIE = "ppacer_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

#: Sent with every UI page and fragment.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not "no-referrer": with it, browsers send "Origin: null" on same-site form posts.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class UiSecurity:
    """Sessions and CSRF checks for one scheduler's UI.

    ``token`` is the scheduler's ``Config.api_token`` (None: no login).
    """

    def __init__(self, token: str | None, *, session_ttl_s: float = 12 * 3600) -> None:
        self.token = token
        self.session_ttl_s = session_ttl_s
        self._key = (
            hashlib.sha256(b"ppacer-ui-session\0" + token.encode()).digest() if token else b""
        )

    @property
    def needs_login(self) -> bool:
        """Whether the UI asks for the token."""
        return self.token is not None

    # ------------------------------------------------------------------ sessions

    def check_token(self, given: str) -> bool:
        """Whether ``given`` is the scheduler's token (constant-time)."""
        if self.token is None:
            return True
        return hmac.compare_digest(given.encode(), self.token.encode())

    def new_session(self, now_s: float | None = None) -> str:
        """A fresh session cookie value."""
        expires = int((time.time() if now_s is None else now_s) + self.session_ttl_s)
        body = f"{expires}.{secrets.token_urlsafe(16)}"
        return f"{body}.{self._sign(body)}"

    def is_logged_in(self, request: Request, now_s: float | None = None) -> bool:
        """Whether the request carries a valid, unexpired session (always True without a token)."""
        if self.token is None:
            return True
        value = request.cookies.get(SESSION_COOKIE, "")
        body, _, sig = value.rpartition(".")
        expires, _, _nonce = body.partition(".")
        if not body or not expires.isdigit():
            return False
        if not hmac.compare_digest(sig, self._sign(body)):
            return False
        return int(expires) > (time.time() if now_s is None else now_s)

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    def set_session(self, response: Response, request: Request) -> None:
        """Attach a new session cookie to ``response``."""
        response.set_cookie(
            SESSION_COOKIE,
            self.new_session(),
            max_age=int(self.session_ttl_s),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    @staticmethod
    def clear_session(response: Response) -> None:
        """Remove the session cookie."""
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")

    # ------------------------------------------------------------------ CSRF

    @staticmethod
    def csrf_token(request: Request) -> tuple[str, bool]:
        """The request's CSRF token, and whether it is new (and must be set as a cookie)."""
        existing = request.cookies.get(CSRF_COOKIE, "")
        if len(existing) >= 32:
            return existing, False
        return secrets.token_urlsafe(32), True

    @staticmethod
    def set_csrf_cookie(response: Response, request: Request, token: str) -> None:
        """Attach the CSRF cookie to ``response``."""
        response.set_cookie(
            CSRF_COOKIE,
            token,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    @staticmethod
    def cross_site_reason(request: Request, submitted: str | None) -> str | None:
        """Why a POST must be refused as a possible cross-site request (None: it may go on)."""
        origin = request.headers.get("origin")
        if origin is not None and origin != "null":
            host = request.headers.get("host", "")
            if urlsplit(origin).netloc.lower() != host.lower():
                return f"origin {origin!r} is not this scheduler ({host!r})"
        elif origin == "null":
            return "requests from an opaque origin are refused"
        elif request.headers.get("sec-fetch-site", "same-origin") == "cross-site":
            return "cross-site request"
        cookie = request.cookies.get(CSRF_COOKIE, "")
        given = submitted or request.headers.get(CSRF_HEADER, "")
        if not cookie or not given or not hmac.compare_digest(cookie.encode(), given.encode()):
            return "missing or wrong CSRF token; reload the page and try again"
        return None
