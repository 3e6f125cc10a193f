"""The one route table shared by the scheduler's server and the client.

Paths are the original ppacer's, so its clients work against this scheduler.
The client never spells a URL by hand: it calls :meth:`Route.url`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

__all__ = ["ROUTES", "Route"]


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: a name used in code, an HTTP method and a path template."""

    name: str
    method: str
    path: str

    def url(self, **params: object) -> str:
        """Fill the path template's ``{name}`` parts (URL-quoted)."""
        path = self.path
        for key, value in params.items():
            path = path.replace("{" + key + "}", quote(str(value), safe=""))
        return path


_ALL = (
    Route("pop_task", "GET", "/dag/task/pop"),
    Route("update_task_status", "POST", "/dag/task/update"),
    Route("trigger_dag_run", "POST", "/dag/run/trigger"),
    Route("restart_dag_run", "POST", "/dag/run/restart"),
    Route("state", "GET", "/state"),
    # Extensions over the original protocol.
    Route("executor_heartbeat", "POST", "/executor/heartbeat"),
    Route("pop_tasks", "GET", "/dag/task/pop/batch"),
    Route("update_task_statuses", "POST", "/dag/task/update/batch"),
    Route("pause_dag", "POST", "/dag/pause"),
    Route("unpause_dag", "POST", "/dag/unpause"),
    Route("backfill_dag", "POST", "/dag/backfill"),
    Route("get_backfill", "GET", "/dag/backfill/{backfillId}"),
    Route("clear_task", "POST", "/dag/run/task/clear"),
    Route("mark_task", "POST", "/dag/run/task/mark"),
    Route("schedule_preview", "GET", "/dag/schedule/{dagId}"),
    Route("dag_run_history", "GET", "/dag/run/history/{runId}"),
    # UI data, as in the original.
    Route("ui_dagrun_stats", "GET", "/ui/dagrun/stats"),
    Route("ui_dagrun_latest", "GET", "/ui/dagrun/latest/{n}"),
    Route("ui_dagrun_task_details", "GET", "/ui/dagrun/task/{runId}/{taskId}/{retry}"),
    Route("ui_dagrun_details", "GET", "/ui/dagrun/{runId}"),
    # Read endpoints of the API and the command line; lists are paginated (limit, offset).
    Route("list_dags", "GET", "/dag/list"),
    Route("get_dag", "GET", "/dag/details/{dagId}"),
    Route("list_dag_runs", "GET", "/dag/run/list"),
    Route("get_dag_run", "GET", "/dag/run/details/{runId}"),
    Route("get_task_logs", "GET", "/dag/run/task/logs/{runId}/{taskId}"),
    Route("list_executors", "GET", "/executor/list"),
)

#: Every route by name.
ROUTES: dict[str, Route] = {route.name: route for route in _ALL}
