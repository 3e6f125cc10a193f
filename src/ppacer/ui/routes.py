"""Routes of the web UI: the route table, and what every page and action goes through.

Pages render whole HTML documents; the part of a page that changes while
things run is re-fetched by htmx with ``?fragment=...`` (polling) and swapped
in place, so nothing reloads. Actions are POSTs of url-encoded forms, checked
for cross-site requests (see :mod:`ppacer.ui.security`); an htmx action gets
the updated fragment back, a plain form post a redirect.

The handlers live by page: :mod:`~ppacer.ui.pages_home` (overview),
:mod:`~ppacer.ui.pages_dags` (DAGs, trigger, pause), :mod:`~ppacer.ui.pages_dag`
(one DAG), :mod:`~ppacer.ui.pages_runs` (runs, a run),
:mod:`~ppacer.ui.pages_logs` (an attempt's log, its download),
:mod:`~ppacer.ui.actions` (restart, clear, mark) and
:mod:`~ppacer.ui.pages_search` (search, log search). Pages read the database
and render in worker threads, so the event loop (task hand-out, reports)
never waits for a page. The ``/ui/dagrun/...`` JSON endpoints of the original
protocol live in the API's route table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ppacer.errors import InvalidInputError, NotFoundError
from ppacer.scheduler.core import SchedulerCore
from ppacer.ui.actions import RunActions
from ppacer.ui.http import Page, PageHandler, client_host, safe_next
from ppacer.ui.inputs import read_form
from ppacer.ui.pages_dag import DagPages
from ppacer.ui.pages_dags import DagsPages
from ppacer.ui.pages_home import HomePages
from ppacer.ui.pages_logs import LogsPages
from ppacer.ui.pages_runs import RunsPages
from ppacer.ui.pages_search import SearchPages
from ppacer.ui.render import HERE, Templates, pygments_css
from ppacer.ui.security import CSRF_FIELD, SECURITY_HEADERS, UiSecurity
from ppacer.ui.view_runs import RUN_FILTERS

__all__ = ["WebUI", "ui_routes"]

log = logging.getLogger("ppacer.ui")

Handler = Callable[[Request], Awaitable[Response]]
ActionHandler = Callable[[Request, dict[str, str]], Awaitable["Page | Response"]]


class WebUI:
    """The UI of one scheduler: its templates, security, handlers and route table."""

    def __init__(self, scheduler: SchedulerCore) -> None:
        self.scheduler = scheduler
        self.templates = Templates(scheduler.config.timezone, scheduler.clock)
        self.security = UiSecurity(scheduler.config.api_token)
        self.templates.env.globals["static"] = self.static_url
        self.templates.env.globals["run_filters"] = list(RUN_FILTERS)
        self.home = HomePages(scheduler)
        self.dags = DagsPages(scheduler)
        self.dag = DagPages(scheduler)
        self.runs = RunsPages(scheduler)
        self.logs = LogsPages(scheduler)
        self.actions = RunActions(scheduler, self.runs)
        self.search = SearchPages(scheduler)

    def static_url(self, name: str) -> str:
        """URL of a static file, versioned so browsers refetch it after an upgrade."""
        return f"/ui/static/{name}?v={quote(self.scheduler.version)}"

    def routes(self) -> list[BaseRoute]:
        """The UI's routes (and ``/`` redirecting to ``/ui``)."""
        page, action = self._page, self._action
        runs, logs, acts = self.runs, self.logs, self.actions
        get, post = ["GET"], ["POST"]
        run = "/ui/runs/{run_id:int}"
        return [
            Route("/", _redirect_to_ui, methods=get, name="ui_root"),
            Route("/ui", page(self.home.overview), methods=get, name="ui_overview"),
            Route("/ui/login", self.login_page, methods=get, name="ui_login_page"),
            Route("/ui/login", self.login, methods=post, name="ui_login"),
            Route("/ui/logout", action(self.logout), methods=post, name="ui_logout"),
            Route("/ui/dags", page(self.dags.dags), methods=get, name="ui_dags"),
            Route("/ui/dags/trigger", page(self.dags.trigger_form), methods=get, name="ui_trigger"),
            Route(
                "/ui/dags/trigger", action(self.dags.trigger), methods=post, name="ui_trigger_post"
            ),
            Route("/ui/dags/pause", action(self.dags.pause), methods=post, name="ui_pause"),
            Route("/ui/dag/{dag_id:path}", page(self.dag.dag), methods=get, name="ui_dag"),
            Route("/ui/runs", page(runs.runs), methods=get, name="ui_runs"),
            Route(run, page(runs.run), methods=get, name="ui_run"),
            Route(f"{run}/task", page(runs.task), methods=get, name="ui_run_task"),
            Route(f"{run}/logs", page(logs.logs), methods=get, name="ui_task_logs"),
            Route(f"{run}/logs/download", page(logs.download), methods=get, name="ui_logs_file"),
            Route(f"{run}/restart", action(acts.restart), methods=post, name="ui_restart"),
            Route(f"{run}/clear", action(acts.clear), methods=post, name="ui_clear"),
            Route(f"{run}/mark", action(acts.mark), methods=post, name="ui_mark"),
            Route("/ui/search", page(self.search.search), methods=get, name="ui_search"),
            Route("/ui/logs/search", page(self.search.logs), methods=get, name="ui_log_search"),
            Route("/ui/pygments.css", _pygments_css, methods=get, name="ui_pygments_css"),
            Mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui_static"),
        ]

    # ------------------------------------------------------------------ plumbing

    async def _respond(
        self, request: Request, page: Page | Response, csrf: tuple[str, bool]
    ) -> Response:
        if isinstance(page, Response):
            response = page
        else:
            try:
                # Big pages (a grid of 5,000 cells) render in a worker thread: the event
                # loop goes on handing out tasks meanwhile.
                response = await asyncio.to_thread(self._render, request, page, csrf[0])
            except Exception:
                log.exception("UI page %s failed to render", request.url.path)
                error = self._error(500, "internal error; see the scheduler's log")
                response = self._render(request, error, csrf[0])
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        if csrf[1]:
            self.security.set_csrf_cookie(response, request, csrf[0])
        return response

    def _render(self, request: Request, page: Page, csrf: str) -> Response:
        template = page.template
        if template == "error.html" and (
            request.headers.get("hx-request") or request.query_params.get("fragment")
        ):
            template = "_error.html"
        html = self.templates.render(
            template,
            request=request,
            csrf=csrf,
            csrf_field=CSRF_FIELD,
            path=request.url.path,
            logged_in=self.security.needs_login and self.security.is_logged_in(request),
            standby=self.scheduler.is_standby,
            leader_url=self.scheduler.leader_url(),
            reload_error=self.scheduler.reload_error,
            **page.context,
        )
        return HTMLResponse(html, status_code=page.http_status, headers=page.headers)

    @staticmethod
    def _error(status: int, message: str) -> Page:
        return Page("error.html", http_status=status, message=message, code=status)

    @staticmethod
    def _login_redirect(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = "/ui/login?" + urlencode({"next": target})
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": login})
        return RedirectResponse(login, status_code=303)

    def _page(self, handler: PageHandler) -> Handler:
        """Wrap a GET handler: login, CSRF cookie, errors as HTML pages, security headers."""

        async def wrapped(request: Request) -> Response:
            csrf = self.security.csrf_token(request)
            if not self.security.is_logged_in(request):
                return await self._respond(request, self._login_redirect(request), csrf)
            try:
                page = await handler(request)
            except NotFoundError as exc:
                page = self._error(404, str(exc))
            except InvalidInputError as exc:
                page = self._error(400, str(exc))
            except Exception:
                log.exception("UI page %s failed", request.url.path)
                page = self._error(500, "internal error; see the scheduler's log")
            return await self._respond(request, page, csrf)

        return wrapped

    def _action(self, handler: ActionHandler) -> Handler:
        """Wrap a POST handler: login, cross-site checks, form parsing, errors."""

        async def wrapped(request: Request) -> Response:
            csrf = self.security.csrf_token(request)
            if not self.security.is_logged_in(request):
                return await self._respond(request, self._login_redirect(request), csrf)
            form = await read_form(request)
            if form is None:
                return await self._respond(request, self._error(413, "form too large"), csrf)
            reason = self.security.cross_site_reason(request, form.get(CSRF_FIELD))
            if reason is not None:
                log.warning("UI refused %s %s: %s", request.method, request.url.path, reason)
                return await self._respond(request, self._error(403, f"refused: {reason}"), csrf)
            try:
                page = await handler(request, form)
            except NotFoundError as exc:
                page = self._error(404, str(exc))
            except Exception:
                log.exception("UI action %s failed", request.url.path)
                page = self._error(500, "internal error; see the scheduler's log")
            return await self._respond(request, page, csrf)

        return wrapped

    # ------------------------------------------------------------------ login

    async def login_page(self, request: Request) -> Response:
        """The token form (only when a token is configured)."""
        csrf = self.security.csrf_token(request)
        nxt = safe_next(request.query_params.get("next"))
        if not self.security.needs_login or self.security.is_logged_in(request):
            return await self._respond(request, RedirectResponse(nxt, status_code=303), csrf)
        return await self._respond(request, Page("login.html", next=nxt, error=None), csrf)

    async def login(self, request: Request) -> Response:
        """Check the token; on success set the session cookie and go on."""
        csrf = self.security.csrf_token(request)
        form = await read_form(request)
        if form is None:
            return await self._respond(request, self._error(413, "form too large"), csrf)
        nxt = safe_next(form.get("next"))
        reason = self.security.cross_site_reason(request, form.get(CSRF_FIELD))
        if reason is not None:
            page = Page("login.html", http_status=403, next=nxt, error=f"Refused: {reason}")
            return await self._respond(request, page, csrf)
        if not self.security.check_token(form.get("token", "")):
            log.warning("UI login with a wrong token from %s", client_host(request))
            page = Page("login.html", http_status=401, next=nxt, error="Wrong token.")
            return await self._respond(request, page, csrf)
        response = RedirectResponse(nxt, status_code=303)
        self.security.set_session(response, request)
        return await self._respond(request, response, csrf)

    async def logout(self, request: Request, _form: dict[str, str]) -> Response:
        """End the session."""
        response = RedirectResponse("/ui/login" if self.security.needs_login else "/ui", 303)
        self.security.clear_session(response)
        return response


def ui_routes(scheduler: SchedulerCore) -> list[BaseRoute]:
    """The UI's routes, mounted by the scheduler's app next to the API."""
    return WebUI(scheduler).routes()


async def _redirect_to_ui(_request: Request) -> Response:
    return RedirectResponse("/ui", status_code=307)


async def _pygments_css(_request: Request) -> Response:
    return Response(
        pygments_css(),
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=86400"},
    )
