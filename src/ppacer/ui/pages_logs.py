"""The log pages of a run's attempt: its lines, filtered, with a live tail; the download.

``/ui/runs/{run_id}/logs?task=...&retry=...`` shows one attempt's lines
(the latest attempt without ``retry``), filtered by lowest level
(``?level=WARNING``) and text (``?grep=``); while the attempt runs, the tail
fragment brings its new lines. ``/logs/download`` gives the whole log as
plain text. Secrets are masked in both (:mod:`ppacer.ui.view_logs`).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ppacer.errors import InvalidInputError
from ppacer.ui import view_logs
from ppacer.ui.http import Page, PageGroup, pick
from ppacer.ui.inputs import int_query

__all__ = ["LogsPages"]


class LogsPages(PageGroup):
    """``/ui/runs/{run_id}/logs`` and ``/ui/runs/{run_id}/logs/download``."""

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
