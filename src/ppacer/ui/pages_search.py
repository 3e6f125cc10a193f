"""The search pages: ``/ui/search`` (the top bar's box: DAGs and runs) and
``/ui/logs/search`` (task log lines by their words, across runs).

Both are GET forms (they work without JavaScript and their results have a
URL to share); a query that cannot be read is answered on the same page with
what was wrong (400), the form kept as typed.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from ppacer.errors import InvalidInputError
from ppacer.timeutils import format_ts
from ppacer.ui import view_search
from ppacer.ui.http import Page, PageGroup
from ppacer.ui.inputs import int_query, when_query
from ppacer.ui.view_logs import LEVELS

__all__ = ["SearchPages"]

#: The run search form's fields besides the box.
RUN_FIELDS = ("dag", "status", "from", "to", "params")
#: The log search form's fields.
LOG_FIELDS = ("q", "dag", "task", "level", "from", "to")


class SearchPages(PageGroup):
    """``/ui/search`` and ``/ui/logs/search``."""

    async def search(self, request: Request) -> Page:
        """DAGs and runs found by the search box (and the form's fields)."""
        q = request.query_params
        text = q.get("q", "")
        fields = {k: q.get(k, "") for k in RUN_FIELDS}
        context: dict[str, Any] = {
            "nav": "search",
            "q": text,
            "fields": fields,
            "results": None,
            "error": None,
            "logs_url": None,
        }
        try:
            query = view_search.parse_search(text, self.zone, fields)
        except InvalidInputError as exc:
            return Page("search.html", http_status=400, **{**context, "error": str(exc)})
        if query.is_empty:
            return Page("search.html", **context)
        dags = dict(self.scheduler.registry)  # on the loop, where a reload may change it
        results = await asyncio.to_thread(view_search.search, self.scheduler, query, dags)
        logs_url = "/ui/logs/search?" + urlencode({"q": " ".join(query.words)})
        return Page(
            "search.html",
            **{**context, "results": results, "logs_url": logs_url if query.words else None},
        )

    async def logs(self, request: Request) -> Page:
        """Log lines matching words and filters, newest first, each linked to its line."""
        q = request.query_params
        form = {k: q.get(k, "") for k in LOG_FIELDS}
        page = int_query(request, "page", 1, minimum=1, maximum=200)
        context: dict[str, Any] = {
            "nav": "logs",
            "form": form,
            "levels": LEVELS,
            "dag_ids": sorted(self.scheduler.registry),
            "found": None,
            "error": None,
            "page_url": lambda n: (
                "/ui/logs/search?"
                + urlencode({**{k: v for k, v in form.items() if v}, "page": str(n)})
            ),
        }
        if not form["q"].strip():
            return Page("log_search.html", **context)
        try:
            level = form["level"].upper() or None
            if level is not None and level not in LEVELS:
                raise InvalidInputError(f"level: one of {', '.join(LEVELS)}, got {level!r}")
            start = when_query(request, "from", self.zone)
            end = when_query(request, "to", self.zone, end_of_day=True)
            found = await asyncio.to_thread(
                view_search.log_search,
                self.scheduler,
                form["q"],
                dag_id=form["dag"] or None,
                task_id=form["task"].strip() or None,
                level=level,
                from_ts=format_ts(start) if start is not None else None,
                to_ts=format_ts(end) if end is not None else None,
                page=page,
                secrets=self.secrets,
            )
        except InvalidInputError as exc:
            return Page("log_search.html", http_status=400, **{**context, "error": str(exc)})
        return Page("log_search.html", **{**context, "found": found})
