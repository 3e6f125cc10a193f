"""The DAG page, ``/ui/dag/{dagId}``: grid, graph, durations, schedule, parameters, code.

``?before=`` / ``?after=`` page the grid by logical time; ``?code=TASK&vs=N``
shows a task's code and its diff to the N-th older version. On the latest
page the grid and the chart refresh every few seconds (``?fragment=live``).
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from starlette.requests import Request

from ppacer.dag.describe import describe_schedule
from ppacer.ui import view_dag
from ppacer.ui.http import Page, PageGroup, pick
from ppacer.ui.inputs import int_query

__all__ = ["DagPages"]

#: Next schedule points previewed.
PREVIEW_POINTS = 8


class DagPages(PageGroup):
    """``/ui/dag/{dag_id}``."""

    async def dag(self, request: Request) -> Page:
        """One DAG's page (or, with ``?fragment=live``, its grid and chart)."""
        dag_id = request.path_params["dag_id"]
        q = request.query_params
        before, after = q.get("before") or None, q.get("after") or None
        live = q.get("fragment") == "live"
        scheduler = self.scheduler
        # The scheduler's memory, on the event loop: the next point and the preview.
        dag = scheduler.registry.get(dag_id)
        next_run = scheduler.next_run(dag_id) if dag is not None else None
        preview = (
            scheduler.schedule_preview(dag_id, PREVIEW_POINTS)
            if dag is not None and not live
            else []
        )
        page = await asyncio.to_thread(
            view_dag.dag_page,
            scheduler,
            dag_id,
            before=before,
            after=after,
            code_task=q.get("code") or None,
            compare=int_query(request, "vs", 1, minimum=1, maximum=view_dag.VERSIONS_SHOWN),
            with_code=not live,
        )
        base = f"/ui/dag/{quote(dag_id, safe='')}"
        code = page.code

        def grid_url(**keys: str) -> str:
            return base + ("?" + urlencode(keys) if keys else "")

        def code_url(task_id: str, vs: int = 1) -> str:
            keys = {"code": task_id, **({"vs": str(vs)} if vs != 1 else {})}
            return f"{base}?{urlencode(keys)}#code"

        schedule = dag.schedule if dag is not None else None
        zone = getattr(schedule, "tz", None) or scheduler.config.timezone
        return Page(
            pick(request, "dag.html", "_dag_live.html"),
            nav="dags",
            p=page,
            base_url=base,
            grid_url=grid_url,
            code_url=code_url,
            live_url=f"{base}?fragment=live",
            schedule=describe_schedule(schedule, scheduler.config.timezone),
            schedule_zone=zone,
            zone_differs=ZoneInfo(zone) != self.zone,
            next_run=next_run,
            preview=view_dag.preview_rows(preview),
            trigger_like=(
                f"/ui/dags/trigger?{urlencode({'dag_id': dag_id, 'params': json.dumps(given)})}"
                if (given := page.latest_params)
                else None
            ),
            code=code,
        )
