"""Routes of the web UI: pages under ``/ui``, their live fragments and the actions (POSTs).

Pages render whole HTML documents; the part of a page that changes while
things run is re-fetched by htmx with ``?fragment=live`` (polling) and swapped
in place, so nothing reloads. Actions are POSTs of url-encoded forms, checked
for cross-site requests (see :mod:`ppacer.ui.security`); an htmx action gets
the updated fragment back, a plain form post a redirect.

The ``/ui/dagrun/...`` JSON endpoints of the original protocol live in the
API's route table; the pages here use other paths.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ppacer.api.strictjson import NON_FINITE, SYNTAX, JsonInputError, loads_strict
from ppacer.dag.status import TaskStatus
from ppacer.errors import ConflictError, InvalidInputError, NotFoundError
from ppacer.scheduler.core import SchedulerCore
from ppacer.timeutils import parse_ts
from ppacer.ui import views
from ppacer.ui.render import HERE, Templates, pygments_css
from ppacer.ui.security import CSRF_FIELD, SECURITY_HEADERS, UiSecurity

__all__ = ["WebUI", "ui_routes"]

log = logging.getLogger("ppacer.ui")

#: Who UI actions are recorded as (``dagrunevents.Actor``).
UI_ACTOR = "ui"
MAX_FORM_BYTES = 256 * 1024
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50

Handler = Callable[[Request], Awaitable[Response]]


class _Page:
    """A handler's answer: a template and its context (or a ready response)."""

    __slots__ = ("context", "headers", "http_status", "template")

    def __init__(
        self,
        template: str,
        http_status: int = 200,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> None:
        self.template = template
        self.http_status = http_status
        self.headers = headers or {}
        self.context = context


PageHandler = Callable[[Request], Awaitable["_Page | Response"]]


class WebUI:
    """The UI of one scheduler: its templates, security and handlers."""

    def __init__(self, scheduler: SchedulerCore) -> None:
        self.scheduler = scheduler
        self.templates = Templates(scheduler.config.timezone)
        self.security = UiSecurity(scheduler.config.api_token)
        self.templates.env.globals["static"] = self.static_url
        self.templates.env.globals["run_filters"] = list(views.RUN_FILTERS)

    def static_url(self, name: str) -> str:
        """URL of a static file, versioned so browsers refetch it after an upgrade."""
        return f"/ui/static/{name}?v={quote(self.scheduler.version)}"

    def routes(self) -> list[BaseRoute]:
        """The UI's routes (and ``/`` redirecting to ``/ui``)."""
        page, action = self._page, self._action
        return [
            Route("/", _redirect_to_ui, methods=["GET"], name="ui_root"),
            Route("/ui", page(self.overview), methods=["GET"], name="ui_overview"),
            Route("/ui/login", self.login_page, methods=["GET"], name="ui_login_page"),
            Route("/ui/login", self.login, methods=["POST"], name="ui_login"),
            Route("/ui/logout", action(self.logout), methods=["POST"], name="ui_logout"),
            Route("/ui/dags", page(self.dags), methods=["GET"], name="ui_dags"),
            Route("/ui/dags/trigger", page(self.trigger_form), methods=["GET"], name="ui_trigger"),
            Route(
                "/ui/dags/trigger", action(self.trigger), methods=["POST"], name="ui_trigger_post"
            ),
            Route("/ui/dags/pause", action(self.pause), methods=["POST"], name="ui_pause"),
            Route("/ui/runs", page(self.runs), methods=["GET"], name="ui_runs"),
            Route("/ui/runs/{run_id:int}", page(self.run), methods=["GET"], name="ui_run"),
            Route(
                "/ui/runs/{run_id:int}/task", page(self.task), methods=["GET"], name="ui_run_task"
            ),
            Route(
                "/ui/runs/{run_id:int}/logs", page(self.logs), methods=["GET"], name="ui_task_logs"
            ),
            Route(
                "/ui/runs/{run_id:int}/restart",
                action(self.restart),
                methods=["POST"],
                name="ui_restart",
            ),
            Route(
                "/ui/runs/{run_id:int}/clear", action(self.clear), methods=["POST"], name="ui_clear"
            ),
            Route(
                "/ui/runs/{run_id:int}/mark", action(self.mark), methods=["POST"], name="ui_mark"
            ),
            Route("/ui/pygments.css", _pygments_css, methods=["GET"], name="ui_pygments_css"),
            Mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui_static"),
        ]

    # ------------------------------------------------------------------ plumbing

    def _respond(
        self, request: Request, page: _Page | Response, csrf: tuple[str, bool]
    ) -> Response:
        if isinstance(page, Response):
            response = page
        else:
            try:
                response = self._render(request, page, csrf[0])
            except Exception:
                log.exception("UI page %s failed to render", request.url.path)
                error = self._error(500, "internal error; see the scheduler's log")
                response = self._render(request, error, csrf[0])
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        if csrf[1]:
            self.security.set_csrf_cookie(response, request, csrf[0])
        return response

    def _render(self, request: Request, page: _Page, csrf: str) -> Response:
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
            **page.context,
        )
        return HTMLResponse(html, status_code=page.http_status, headers=page.headers)

    def _error(self, status: int, message: str) -> _Page:
        return _Page("error.html", http_status=status, message=message, code=status)

    def _login_redirect(self, request: Request) -> Response:
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
                return self._respond(request, self._login_redirect(request), csrf)
            try:
                page = await handler(request)
            except NotFoundError as exc:
                page = self._error(404, str(exc))
            except InvalidInputError as exc:
                page = self._error(400, str(exc))
            except Exception:
                log.exception("UI page %s failed", request.url.path)
                page = self._error(500, "internal error; see the scheduler's log")
            return self._respond(request, page, csrf)

        return wrapped

    def _action(
        self, handler: Callable[[Request, dict[str, str]], Awaitable[_Page | Response]]
    ) -> Handler:
        """Wrap a POST handler: login, cross-site checks, form parsing, errors."""

        async def wrapped(request: Request) -> Response:
            csrf = self.security.csrf_token(request)
            if not self.security.is_logged_in(request):
                return self._respond(request, self._login_redirect(request), csrf)
            form = await _read_form(request)
            if form is None:
                return self._respond(request, self._error(413, "form too large"), csrf)
            reason = self.security.cross_site_reason(request, form.get(CSRF_FIELD))
            if reason is not None:
                log.warning("UI refused %s %s: %s", request.method, request.url.path, reason)
                return self._respond(request, self._error(403, f"refused: {reason}"), csrf)
            try:
                page = await handler(request, form)
            except NotFoundError as exc:
                page = self._error(404, str(exc))
            except Exception:
                log.exception("UI action %s failed", request.url.path)
                page = self._error(500, "internal error; see the scheduler's log")
            return self._respond(request, page, csrf)

        return wrapped

    # ------------------------------------------------------------------ login

    async def login_page(self, request: Request) -> Response:
        """The token form (only when a token is configured)."""
        csrf = self.security.csrf_token(request)
        nxt = _safe_next(request.query_params.get("next"))
        if not self.security.needs_login or self.security.is_logged_in(request):
            return self._respond(request, RedirectResponse(nxt, status_code=303), csrf)
        return self._respond(request, _Page("login.html", next=nxt, error=None), csrf)

    async def login(self, request: Request) -> Response:
        """Check the token; on success set the session cookie and go on."""
        csrf = self.security.csrf_token(request)
        form = await _read_form(request)
        if form is None:
            return self._respond(request, self._error(413, "form too large"), csrf)
        nxt = _safe_next(form.get("next"))
        reason = self.security.cross_site_reason(request, form.get(CSRF_FIELD))
        if reason is not None:
            page = _Page("login.html", http_status=403, next=nxt, error=f"Refused: {reason}")
            return self._respond(request, page, csrf)
        if not self.security.check_token(form.get("token", "")):
            log.warning("UI login with a wrong token from %s", _client(request))
            page = _Page("login.html", http_status=401, next=nxt, error="Wrong token.")
            return self._respond(request, page, csrf)
        response = RedirectResponse(nxt, status_code=303)
        self.security.set_session(response, request)
        return self._respond(request, response, csrf)

    async def logout(self, request: Request, _form: dict[str, str]) -> Response:
        """End the session."""
        response = RedirectResponse("/ui/login" if self.security.needs_login else "/ui", 303)
        self.security.clear_session(response)
        return response

    # ------------------------------------------------------------------ pages

    async def overview(self, request: Request) -> _Page:
        """Runs by status, tasks running, queues, executors, state, last failures."""
        data = views.overview(self.scheduler)
        return _Page(_pick(request, "overview.html", "_overview_live.html"), nav="overview", **data)

    async def dags(self, request: Request) -> _Page:
        """Every DAG: schedule, next run, last runs, pause toggle, trigger."""
        return self._dags_page(request, flash=None)

    def _dags_page(
        self, request: Request, flash: tuple[str, str] | None, status: int = 200
    ) -> _Page:
        return _Page(
            _pick(request, "dags.html", "_dags_live.html"),
            http_status=status,
            nav="dags",
            dags=views.dags_view(self.scheduler),
            flash=flash,
        )

    async def trigger_form(self, request: Request) -> _Page:
        """The trigger panel of a DAG (a JSON parameters box)."""
        dag_id = request.query_params.get("dag_id", "")
        if dag_id not in self.scheduler.registry:
            raise NotFoundError(f"unknown DAG {dag_id!r}")
        return _Page(
            _pick(request, "trigger_page.html", "_trigger_form.html", fragment="form"),
            nav="dags",
            dag_id=dag_id,
            params_text="{}",
            error=None,
            run=None,
        )

    async def trigger(self, request: Request, form: dict[str, str]) -> _Page | Response:
        """Create a run of a DAG with the given JSON parameters."""
        dag_id = form.get("dag_id", "")
        if dag_id not in self.scheduler.registry:
            raise NotFoundError(f"unknown DAG {dag_id!r}")
        text = form.get("params", "").strip() or "{}"
        htmx = bool(request.headers.get("hx-request"))
        template = "_trigger_form.html" if htmx else "trigger_page.html"
        try:
            params = loads_strict(text)
        except JsonInputError as exc:
            problem = (
                f"Parameters are not valid JSON: {exc.problem}"
                if exc.kind in (SYNTAX, NON_FINITE)
                else f"Parameters: {exc}"
            )
            return _Page(
                template,
                http_status=400,
                nav="dags",
                dag_id=dag_id,
                params_text=text,
                error=problem,
                run=None,
            )
        if not isinstance(params, dict):
            return _Page(
                template,
                http_status=400,
                nav="dags",
                dag_id=dag_id,
                params_text=text,
                error=f"Parameters must be a JSON object ({{...}}), not {type(params).__name__}.",
                run=None,
            )
        try:
            run = await self.scheduler.trigger(dag_id, params or None, actor=UI_ACTOR)
        except ConflictError as exc:
            return _Page(
                template,
                http_status=409,
                nav="dags",
                dag_id=dag_id,
                params_text=text,
                error=str(exc),
                run=None,
            )
        if not htmx:
            return RedirectResponse(f"/ui/runs/{run.run_id}", status_code=303)
        return _Page(template, nav="dags", dag_id=dag_id, params_text=text, error=None, run=run)

    async def pause(self, request: Request, form: dict[str, str]) -> _Page | Response:
        """Pause or unpause a DAG."""
        dag_id = form.get("dag_id", "")
        paused = form.get("paused") == "1"
        self.scheduler.set_paused(dag_id, paused, UI_ACTOR)
        if not request.headers.get("hx-request"):
            return RedirectResponse("/ui/dags", status_code=303)
        flash = ("ok", f"{'Paused' if paused else 'Unpaused'} {dag_id}.")
        return _Page(
            "_dags_live.html", nav="dags", dags=views.dags_view(self.scheduler), flash=flash
        )

    async def runs(self, request: Request) -> _Page:
        """The latest runs, filtered by DAG and status, paginated."""
        q = request.query_params
        dag_id = q.get("dag") or None
        status = q.get("status") or None
        if status is not None and status not in views.RUN_FILTERS:
            raise InvalidInputError(
                f"status: one of {', '.join(views.RUN_FILTERS)}, got {status!r}"
            )
        page = _int_query(request, "page", 1, minimum=1)
        size = _int_query(request, "size", DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
        data = views.runs_view(self.scheduler, dag_id, status, page, size)
        query = {k: v for k, v in (("dag", dag_id), ("status", status)) if v}
        if size != DEFAULT_PAGE_SIZE:
            query["size"] = str(size)
        return _Page(
            _pick(request, "runs.html", "_runs_live.html"),
            nav="runs",
            dag_ids=sorted(self.scheduler.registry),
            dag=dag_id,
            status_filter=status,
            query=query,
            page_url=lambda n: "/ui/runs?" + urlencode({**query, "page": str(n)}),
            live_url="/ui/runs?" + urlencode({**query, "page": str(page), "fragment": "live"}),
            **data,
        )

    async def run(self, request: Request) -> _Page:
        """One run: graph, Gantt chart, tasks, actions."""
        run_id = int(request.path_params["run_id"])
        return self._run_page(request, run_id, flash=None)

    def _run_page(
        self,
        request: Request,
        run_id: int,
        flash: tuple[str, str] | None,
        status: int = 200,
        template: str | None = None,
        open_task: str | None = None,
    ) -> _Page:
        view = views.run_view(self.scheduler, run_id)
        task_id = request.query_params.get("task")
        panel = None
        if task_id and template is None and request.query_params.get("fragment") is None:
            panel = views.task_panel(self.scheduler, run_id, task_id)
        page = _Page(
            template or _pick(request, "run.html", "_run_live.html"),
            http_status=status,
            nav="runs",
            v=view,
            panel=panel,
            flash=flash,
        )
        if page.template == "_run_live.html":
            self._add_panel_update(page, run_id, open_task or request.query_params.get("open_task"))
        return page

    def _add_panel_update(self, page: _Page, run_id: int, task_id: str | None) -> None:
        """Send the open task panel's attempts along with the live region (out of band)."""
        if not task_id:
            return
        with contextlib.suppress(NotFoundError):  # a task not in this run: no panel to update
            page.context["oob_panel"] = views.task_panel(self.scheduler, run_id, task_id)

    async def task(self, request: Request) -> _Page:
        """The task panel of a run page (attempts, errors, source, actions)."""
        run_id = int(request.path_params["run_id"])
        task_id = request.query_params.get("task", "")
        panel = views.task_panel(self.scheduler, run_id, task_id)
        return _Page(
            _pick(request, "task_page.html", "_task_panel.html", fragment="panel")
            if request.query_params.get("fragment") != "attempts"
            else "_task_attempts.html",
            nav="runs",
            panel=panel,
        )

    async def logs(self, request: Request) -> _Page:
        """One attempt's log records; the tail fragment brings new records while it runs."""
        run_id = int(request.path_params["run_id"])
        task_id = request.query_params.get("task", "")
        given = request.query_params.get("retry")
        retry = _int_query(request, "retry", 0, minimum=0) if given else None
        offset = _int_query(request, "offset", 0, minimum=0)
        data = views.logs_view(self.scheduler, run_id, task_id, retry, offset)
        shown = data["retry"]
        base = f"/ui/runs/{run_id}/logs?" + urlencode({"task": task_id, "retry": str(shown)})
        return _Page(
            _pick(request, "logs.html", "_log_rows.html", fragment="tail"),
            nav="runs",
            task_id=task_id,
            base_url=base,
            logs_url=lambda r: (
                f"/ui/runs/{run_id}/logs?" + urlencode({"task": task_id, "retry": str(r)})
            ),
            **data,
        )

    # ------------------------------------------------------------------ run actions

    async def restart(self, request: Request, form: dict[str, str]) -> _Page | Response:
        """Restart a FAILED run."""
        run_id = int(request.path_params["run_id"])
        run = views.read_run(self.scheduler, run_id)
        try:
            number = self.scheduler.restart_run(run.dag_id, parse_ts(run.exec_ts), UI_ACTOR)
        except (InvalidInputError, ConflictError) as exc:
            return self._after_action(request, form, run_id, ("error", str(exc)), 409)
        flash = ("ok", f"Run restarted (restart #{number}).")
        return self._after_action(request, form, run_id, flash)

    async def clear(self, request: Request, form: dict[str, str]) -> _Page | Response:
        """Run a task and its downstream again in a finished run."""
        run_id = int(request.path_params["run_id"])
        task_id = form.get("task_id", "")
        run = views.read_run(self.scheduler, run_id)
        try:
            cleared = self.scheduler.clear_task(
                run.dag_id, parse_ts(run.exec_ts), task_id, UI_ACTOR
            )
        except (InvalidInputError, ConflictError) as exc:
            return self._after_action(request, form, run_id, ("error", str(exc)), 409)
        flash = ("ok", f"Cleared {len(cleared)} task(s): {', '.join(cleared)}.")
        return self._after_action(request, form, run_id, flash)

    async def mark(self, request: Request, form: dict[str, str]) -> _Page | Response:
        """Mark a task's latest attempt SUCCESS or FAILED."""
        run_id = int(request.path_params["run_id"])
        task_id = form.get("task_id", "")
        wanted = form.get("status", "")
        if wanted not in (TaskStatus.SUCCESS, TaskStatus.FAILED):
            flash = ("error", f"a task can be marked SUCCESS or FAILED, not {wanted!r}")
            return self._after_action(request, form, run_id, flash, 400)
        run = views.read_run(self.scheduler, run_id)
        try:
            self.scheduler.mark_task(
                run.dag_id, parse_ts(run.exec_ts), task_id, TaskStatus(wanted), UI_ACTOR
            )
        except (InvalidInputError, ConflictError) as exc:
            return self._after_action(request, form, run_id, ("error", str(exc)), 409)
        return self._after_action(request, form, run_id, ("ok", f"Marked {task_id} {wanted}."))

    def _after_action(
        self,
        request: Request,
        form: dict[str, str],
        run_id: int,
        flash: tuple[str, str],
        status: int = 200,
    ) -> _Page | Response:
        """htmx gets the run's live region (and the open task panel); a plain post a redirect."""
        task_id = form.get("task_id") or form.get("open_task")
        if not request.headers.get("hx-request"):
            target = f"/ui/runs/{run_id}" + (f"?{urlencode({'task': task_id})}" if task_id else "")
            return RedirectResponse(target, status_code=303)
        return self._run_page(
            request, run_id, flash, status, template="_run_live.html", open_task=task_id
        )


# ---------------------------------------------------------------------- helpers


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


def _pick(request: Request, full: str, partial: str, fragment: str = "live") -> str:
    """The full page, or only its fragment when htmx asks for it (``?fragment=...``)."""
    return partial if request.query_params.get("fragment") == fragment else full


def _safe_next(value: str | None) -> str:
    """Where to go after login: only a path of this UI (no open redirect)."""
    if value and value.startswith("/ui") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui"


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "?"


def _int_query(
    request: Request, name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInputError(f"{name}: not a whole number: {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and {maximum}" if maximum is not None else ""
        raise InvalidInputError(f"{name}: must be between {minimum}{upper}, got {value}")
    return value


async def _read_form(request: Request) -> dict[str, str] | None:
    """An url-encoded form body as a dict (first value of each field); None if too large."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return {}
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
