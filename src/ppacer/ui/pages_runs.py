"""The runs pages: the list, a run (graph, timeline, tasks), a task's panel.

A run's task table narrows and orders by query parameters
(``?status=FAILED&name=load&sort=-duration``), so it works without
JavaScript; the live region keeps them when it refreshes. An attempt's log
is :mod:`ppacer.ui.pages_logs`.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlencode

from starlette.requests import Request

from ppacer.errors import InvalidInputError, NotFoundError
from ppacer.ui import view_run, view_runs
from ppacer.ui.http import Page, PageGroup, pick
from ppacer.ui.inputs import int_query
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
        if status is not None and status not in view_runs.RUN_FILTERS:
            raise InvalidInputError(
                f"status: one of {', '.join(view_runs.RUN_FILTERS)}, got {status!r}"
            )
        page = int_query(request, "page", 1, minimum=1)
        size = int_query(request, "size", DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
        data = await asyncio.to_thread(
            view_runs.runs_view, self.scheduler, dag_id, status, page, size
        )
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
