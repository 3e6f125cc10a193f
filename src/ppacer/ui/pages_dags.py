"""The DAGs page and its actions: the list, the trigger panel, the pause switch."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ppacer.api.strictjson import NON_FINITE, SYNTAX, JsonInputError, loads_strict
from ppacer.errors import ConflictError, NotFoundError
from ppacer.ui import views
from ppacer.ui.http import UI_ACTOR, Page, PageGroup, pick

__all__ = ["DagsPages"]

#: Longest parameters text the trigger panel is pre-filled with from the URL.
MAX_PREFILL = 64 * 1024


class DagsPages(PageGroup):
    """``/ui/dags`` and its actions."""

    async def dags(self, request: Request) -> Page:
        """Every DAG: schedule, next run, last runs, pause toggle, trigger."""
        return self._dags_page(request, flash=None)

    def _dags_page(self, request: Request, flash: tuple[str, str] | None) -> Page:
        # On the event loop: next runs are the DAG-run watcher's memory.
        return Page(
            pick(request, "dags.html", "_dags_live.html"),
            nav="dags",
            dags=views.dags_view(self.scheduler),
            flash=flash,
        )

    async def trigger_form(self, request: Request) -> Page:
        """The trigger panel of a DAG (a JSON parameters box, ``?params=`` pre-fills it)."""
        dag_id = request.query_params.get("dag_id", "")
        if dag_id not in self.scheduler.registry:
            raise NotFoundError(f"unknown DAG {dag_id!r}")
        prefill = request.query_params.get("params", "").strip()
        return Page(
            pick(request, "trigger_page.html", "_trigger_form.html", fragment="form"),
            nav="dags",
            dag_id=dag_id,
            params_text=prefill if prefill and len(prefill) <= MAX_PREFILL else "{}",
            error=None,
            run=None,
        )

    async def trigger(self, request: Request, form: dict[str, str]) -> Page | Response:
        """Create a run of a DAG with the given JSON parameters."""
        dag_id = form.get("dag_id", "")
        if dag_id not in self.scheduler.registry:
            raise NotFoundError(f"unknown DAG {dag_id!r}")
        text = form.get("params", "").strip() or "{}"
        htmx = bool(request.headers.get("hx-request"))
        template = "_trigger_form.html" if htmx else "trigger_page.html"

        def refused(status: int, error: str) -> Page:
            return Page(
                template,
                http_status=status,
                nav="dags",
                dag_id=dag_id,
                params_text=text,
                error=error,
                run=None,
            )

        try:
            params = loads_strict(text)
        except JsonInputError as exc:
            if exc.kind in (SYNTAX, NON_FINITE):
                return refused(400, f"Parameters are not valid JSON: {exc.problem}")
            return refused(400, f"Parameters: {exc}")
        if not isinstance(params, dict):
            kind = type(params).__name__
            return refused(400, f"Parameters must be a JSON object ({{...}}), not {kind}.")
        try:
            run = await self.scheduler.trigger(dag_id, params or None, actor=UI_ACTOR)
        except ConflictError as exc:
            return refused(409, str(exc))
        if not htmx:
            return RedirectResponse(f"/ui/runs/{run.run_id}", status_code=303)
        return Page(template, nav="dags", dag_id=dag_id, params_text=text, error=None, run=run)

    async def pause(self, request: Request, form: dict[str, str]) -> Page | Response:
        """Pause or unpause a DAG (back to the page it was done from, without htmx)."""
        dag_id = form.get("dag_id", "")
        paused = form.get("paused") == "1"
        self.scheduler.set_paused(dag_id, paused, UI_ACTOR)
        if not request.headers.get("hx-request"):
            back = form.get("back", "")
            target = back if back.startswith("/ui/dag/") else "/ui/dags"
            return RedirectResponse(target, status_code=303)
        flash = ("ok", f"{'Paused' if paused else 'Unpaused'} {dag_id}.")
        return self._dags_page(request, flash)
