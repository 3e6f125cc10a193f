"""The runs pages: the list, a run (graph, timeline, tasks), a task's panel, an attempt's log.

A run's task table narrows and orders by query parameters
(``?status=FAILED&name=load&sort=-duration``), so it works without
JavaScript; the live region keeps them when it refreshes. The log view
filters by lowest level (``?level=WARNING``) and text (``?grep=``), and
``/logs/download`` gives the whole log as plain text.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ppacer.errors import InvalidInputError, NotFoundError
from ppacer.ui import view_logs, view_run, views
from ppacer.ui.http import Page, PageGroup, int_query, pick
from ppacer.ui.view_run import TASK_SORTS, TaskTableQuery

__all__ = ["RunsPages"]

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50


def _table_query(request: Request) -> TaskTableQuery:
    q = request.query_params
    table = TaskTableQuery(q.get("status", ""), q.get("name", ""), q.get("sort", "") or "graph")
    if table.key not in TASK_SORTS:
        raise InvalidInputError(f"sort: one of {', '.join(TASK_SORTS)} (-name: descending)")
    return table


def _url(path: str, query: dict[str, str]) -> str:
    return path + ("?" + urlencode(query) if query else "")


class RunsPages(PageGroup):
    """``/ui/runs`` and ``/ui/runs/{run_id}/...``."""

    async def runs(self, request: Request) -> Page:
        """The latest runs, filtered by DAG and status, paginated."""
        q = request.query_params
        dag_id = q.get("dag") or None
        status = q.get("status") or None
        if status is not None and status not in views.RUN_FILTERS:
            raise InvalidInputError(
                f"status: one of {', '.join(views.RUN_FILTERS)}, got {status!r}"
            )
        page = int_query(request, "page", 1, minimum=1)
        size = int_query(request, "size", DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
        data = await asyncio.to_thread(views.runs_view, self.scheduler, dag_id, status, page, size)
        query = {k: v for k, v in (("dag", dag_id), ("status", status)) if v}
        if size != DEFAULT_PAGE_SIZE:
            query["size"] = str(size)
        return Page(
            pick(request, "runs.html", "_runs_live.html"),
            nav="runs",
            dag_ids=sorted(self.scheduler.registry),
            dag=dag_id,
            status_filter=status,
            query=query,
            page_url=lambda n: "/ui/runs?" + urlencode({**query, "page": str(n)}),
            live_url="/ui/runs?" + urlencode({**query, "page": str(page), "fragment": "live"}),
            **data,
        )

    async def run(self, request: Request) -> Page:
        """One run: graph, Gantt chart, tasks, timing, actions."""
        return await self.run_page(request, int(request.path_params["run_id"]), flash=None)

    async def _waiting(self, run_id: int) -> dict[tuple[str, int], str]:
        """Why the run's queued attempts wait (the scheduler's memory, read on the loop)."""
        run = await asyncio.to_thread(self.scheduler.reads.run, run_id)
        return self.scheduler.waiting_reasons(run.dag_id, run.exec_ts)

    async def run_page(
        self,
        request: Request,
        run_id: int,
        flash: tuple[str, str] | None,
        status: int = 200,
        template: str | None = None,
        open_task: str | None = None,
    ) -> Page:
        """The run page (or its live region, ``template``), with the open task's panel."""
        table = _table_query(request)
        waiting = await self._waiting(run_id)
        view = await asyncio.to_thread(view_run.run_view, self.scheduler, run_id, waiting, table)
        task_id = request.query_params.get("task")
        panel = None
        if task_id and template is None and request.query_params.get("fragment") is None:
            panel = await asyncio.to_thread(
                view_run.task_panel, self.scheduler, run_id, task_id, waiting
            )
        base = f"/ui/runs/{run_id}"

        def sort_url(key: str) -> str:
            # Each click on a column: ascending, then descending, then graph order again.
            nxt = key if table.key != key else ("" if table.descending else f"-{key}")
            return _url(base, table.params(sort=nxt)) + "#tasks"

        page = Page(
            template or pick(request, "run.html", "_run_live.html"),
            http_status=status,
            nav="runs",
            v=view,
            panel=panel,
            flash=flash,
            table=table,
            table_url=lambda **changes: _url(base, table.params(**changes)),
            sort_url=sort_url,
            live_url=f"{base}?" + urlencode({**table.params(), "fragment": "live"}),
        )
        wanted = open_task or request.query_params.get("open_task")
        if page.template == "_run_live.html" and wanted:
            # Send the open task panel's attempts along with the live region (out of band).
            with contextlib.suppress(NotFoundError):  # a task not in this run: no panel
                page.context["oob_panel"] = await asyncio.to_thread(
                    view_run.task_panel, self.scheduler, run_id, wanted, waiting
                )
        return page

    async def task(self, request: Request) -> Page:
        """The task panel of a run page (attempts, errors, source, actions)."""
        run_id = int(request.path_params["run_id"])
        task_id = request.query_params.get("task", "")
        waiting = await self._waiting(run_id)
        panel = await asyncio.to_thread(
            view_run.task_panel, self.scheduler, run_id, task_id, waiting
        )
        attempts_only = request.query_params.get("fragment") == "attempts"
        return Page(
            "_task_attempts.html"
            if attempts_only
            else pick(request, "task_page.html", "_task_panel.html", fragment="panel"),
            nav="runs",
            panel=panel,
        )

    async def logs(self, request: Request) -> Page:
        """One attempt's log lines, filtered; the tail fragment brings new lines while it runs."""
        run_id = int(request.path_params["run_id"])
        q = request.query_params
        task_id = q.get("task", "")
        retry = int_query(request, "retry", 0, minimum=0) if q.get("retry") else None
        offset = int_query(request, "offset", 0, minimum=0)
        level = q.get("level", "").upper()
        if level and level not in view_logs.LEVELS:
            raise InvalidInputError(f"level: one of {', '.join(view_logs.LEVELS)}, got {level!r}")
        grep = q.get("grep", "")
        data = await asyncio.to_thread(
            view_logs.logs_view,
            self.scheduler,
            run_id,
            task_id,
            retry,
            offset,
            min_level=level,
            grep=grep,
            secrets=self.secrets,
        )
        shown = data["retry"]
        filters = {k: v for k, v in (("level", level), ("grep", grep)) if v}
        attempt = {"task": task_id, "retry": str(shown)}
        base = f"/ui/runs/{run_id}/logs?" + urlencode({**attempt, **filters})
        return Page(
            pick(request, "logs.html", "_log_rows.html", fragment="tail"),
            nav="runs",
            task_id=task_id,
            base_url=base,
            level=level,
            grep=grep,
            levels=view_logs.LEVELS,
            download_url=f"/ui/runs/{run_id}/logs/download?" + urlencode(attempt),
            logs_url=lambda r: (
                f"/ui/runs/{run_id}/logs?"
                + urlencode({"task": task_id, "retry": str(r), **filters})
            ),
            **data,
        )

    async def download(self, request: Request) -> Response:
        """The attempt's whole log as a plain-text file (secrets masked)."""
        run_id = int(request.path_params["run_id"])
        q = request.query_params
        retry = int_query(request, "retry", 0, minimum=0) if q.get("retry") else None
        name, lines = await asyncio.to_thread(
            view_logs.log_text, self.scheduler, run_id, q.get("task", ""), retry, self.secrets
        )
        return StreamingResponse(
            lines,  # a plain iterator: Starlette reads it in a worker thread
            media_type="text/plain; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
