"""A run's actions: restart it, clear a task (and its downstream), mark a task by hand.

Each is a POST through the scheduler's public methods, recorded with the
actor ``ui``. htmx gets the run's live region back (with the open task's
panel, out of band); a plain form post is redirected to the run.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ppacer.dag.status import TaskStatus
from ppacer.errors import ConflictError, InvalidInputError
from ppacer.scheduler.core import SchedulerCore
from ppacer.timeutils import parse_ts
from ppacer.ui.http import UI_ACTOR, Page, PageGroup
from ppacer.ui.pages_runs import RunsPages

__all__ = ["RunActions"]


class RunActions(PageGroup):
    """``POST /ui/runs/{run_id}/restart|clear|mark``."""

    def __init__(self, scheduler: SchedulerCore, runs: RunsPages) -> None:
        super().__init__(scheduler)
        self.runs = runs

    async def restart(self, request: Request, form: dict[str, str]) -> Page | Response:
        """Restart a FAILED run."""
        run_id = int(request.path_params["run_id"])
        run = self.scheduler.reads.run(run_id)
        try:
            number = self.scheduler.restart_run(run.dag_id, parse_ts(run.exec_ts), UI_ACTOR)
        except (InvalidInputError, ConflictError) as exc:
            return await self._after(request, form, run_id, ("error", str(exc)), 409)
        return await self._after(
            request, form, run_id, ("ok", f"Run restarted (restart #{number}).")
        )

    async def clear(self, request: Request, form: dict[str, str]) -> Page | Response:
        """Run a task and its downstream again in a finished run."""
        run_id = int(request.path_params["run_id"])
        task_id = form.get("task_id", "")
        run = self.scheduler.reads.run(run_id)
        try:
            cleared = self.scheduler.clear_task(
                run.dag_id, parse_ts(run.exec_ts), task_id, UI_ACTOR
            )
        except (InvalidInputError, ConflictError) as exc:
            return await self._after(request, form, run_id, ("error", str(exc)), 409)
        flash = ("ok", f"Cleared {len(cleared)} task(s): {', '.join(cleared)}.")
        return await self._after(request, form, run_id, flash)

    async def mark(self, request: Request, form: dict[str, str]) -> Page | Response:
        """Mark a task's latest attempt SUCCESS or FAILED."""
        run_id = int(request.path_params["run_id"])
        task_id = form.get("task_id", "")
        wanted = form.get("status", "")
        if wanted not in (TaskStatus.SUCCESS, TaskStatus.FAILED):
            flash = ("error", f"a task can be marked SUCCESS or FAILED, not {wanted!r}")
            return await self._after(request, form, run_id, flash, 400)
        run = self.scheduler.reads.run(run_id)
        try:
            self.scheduler.mark_task(
                run.dag_id, parse_ts(run.exec_ts), task_id, TaskStatus(wanted), UI_ACTOR
            )
        except (InvalidInputError, ConflictError) as exc:
            return await self._after(request, form, run_id, ("error", str(exc)), 409)
        return await self._after(request, form, run_id, ("ok", f"Marked {task_id} {wanted}."))

    async def _after(
        self,
        request: Request,
        form: dict[str, str],
        run_id: int,
        flash: tuple[str, str],
        status: int = 200,
    ) -> Page | Response:
        """htmx gets the run's live region (and the open task panel); a plain post a redirect."""
        task_id = form.get("task_id") or form.get("open_task")
        if not request.headers.get("hx-request"):
            target = f"/ui/runs/{run_id}" + (f"?{urlencode({'task': task_id})}" if task_id else "")
            return RedirectResponse(target, status_code=303)
        return await self.runs.run_page(
            request, run_id, flash, status, template="_run_live.html", open_task=task_id
        )
