"""The overview page: runs by status, tasks running, queues, executors, last failures."""

from __future__ import annotations

from starlette.requests import Request

from ppacer.ui import views
from ppacer.ui.http import Page, PageGroup, pick

__all__ = ["HomePages"]


class HomePages(PageGroup):
    """``/ui``."""

    async def overview(self, request: Request) -> Page:
        """Runs by status, tasks running, queues, executors, state, last failures.

        On the event loop: most of it is the scheduler's memory (queues, executors,
        leases), read where it changes; its queries are a few small counts.
        """
        data = views.overview(self.scheduler)
        return Page(pick(request, "overview.html", "_overview_live.html"), nav="overview", **data)
