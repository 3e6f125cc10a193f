"""The scheduler's HTTP client: one method per endpoint, URLs from the shared route table.

This is the only module that does HTTP. 4xx answers become ppacer errors
carrying the scheduler's message; connection failures and 5xx answers become
:class:`~ppacer.errors.SchedulerUnavailableError`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx2

from ppacer.api.models import TaskToExec
from ppacer.api.routes import ROUTES
from ppacer.dag.status import SchedulerState, TaskStatus
from ppacer.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PpacerError,
    SchedulerUnavailableError,
)
from ppacer.timeutils import format_ts

__all__ = ["Client"]

_ERRORS: dict[int, type[PpacerError]] = {
    400: InvalidInputError,
    404: NotFoundError,
    409: ConflictError,
}


def _status_body(
    task: TaskToExec, status: TaskStatus, error: str | None, output: Any, branch: list[str] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dagId": task.dag_id,
        "execTs": task.exec_ts,
        "taskId": task.task_id,
        "retry": task.retry,
        "status": str(status),
        "taskError": error,
    }
    if task.lease_token is not None:
        body["leaseToken"] = task.lease_token
    if output is not None:
        body["output"] = output
    if branch is not None:
        body["branch"] = branch
    return body


class Client:
    """Talks to a ppacer scheduler (ours or the original) over HTTP. Thread-safe."""

    def __init__(self, url: str, *, timeout_s: float = 15.0, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx2.Client(
            base_url=self.url,
            timeout=timeout_s,
            headers=headers,
            limits=httpx2.Limits(max_connections=64, max_keepalive_connections=32),
        )

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(
        self,
        name: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout_s: float | None = None,
        **path: object,
    ) -> httpx2.Response:
        route = ROUTES[name]
        try:
            response = self._http.request(
                route.method,
                route.url(**path),
                json=json,
                params=params,
                timeout=timeout_s if timeout_s is not None else self.timeout_s,
            )
        except httpx2.HTTPError as exc:
            raise SchedulerUnavailableError(f"scheduler at {self.url} unreachable: {exc}") from exc
        if response.status_code < 400:
            return response
        message = _error_text(response)
        if response.status_code >= 500:
            raise SchedulerUnavailableError(f"scheduler answered {response.status_code}: {message}")
        raise _ERRORS.get(response.status_code, PpacerError)(message)

    def get_task(self, wait_s: float = 0.0, executor: str | None = None) -> TaskToExec | None:
        """Pop the next ready task attempt; with ``wait_s`` wait that long for one (long poll).

        An ``executor`` name makes the attempt's lease renewable by :meth:`heartbeat`.
        """
        params: dict[str, Any] = {}
        if wait_s > 0:
            params["wait_s"] = wait_s
        if executor is not None:
            params["executor"] = executor
        response = self._call("pop_task", params=params or None, timeout_s=self.timeout_s + wait_s)
        if response.status_code == 204 or not response.content:
            return None
        return TaskToExec.from_json(response.json())

    def upsert_task_status(
        self,
        task: TaskToExec,
        status: TaskStatus,
        task_error: BaseException | str | None = None,
        *,
        output: Any = None,
        branch: list[str] | None = None,
    ) -> None:
        """Report a task attempt's status (RUNNING, SUCCESS or FAILED, with the error).

        The attempt's lease token goes with it; a SUCCESS may carry the task's
        ``output`` (a JSON value) and the children a ``branch`` follows.
        """
        error: str | None
        if isinstance(task_error, BaseException):
            error = f"{type(task_error).__name__}: {task_error}"
        else:
            error = task_error
        self._call("update_task_status", json=_status_body(task, status, error, output, branch))

    def get_tasks(
        self, max_n: int, wait_s: float = 0.0, executor: str | None = None
    ) -> list[TaskToExec]:
        """Pop up to ``max_n`` ready attempts in one request (an extension of the protocol).

        A scheduler without the batch endpoint answers 404 (:class:`NotFoundError`).
        """
        params: dict[str, Any] = {"max": max_n}
        if wait_s > 0:
            params["wait_s"] = wait_s
        if executor is not None:
            params["executor"] = executor
        response = self._call("pop_tasks", params=params, timeout_s=self.timeout_s + wait_s)
        return [TaskToExec.from_json(item) for item in response.json()["tasks"]]

    def upsert_task_statuses(
        self, reports: list[tuple[TaskToExec, TaskStatus, str | None, Any, list[str] | None]]
    ) -> list[PpacerError | None]:
        """Report several attempts in one request: ``(task, status, error, output, branch)``.

        Returns, per report, None or the error the scheduler answered with.
        """
        updates = [
            _status_body(task, status, error, output, branch)
            for task, status, error, output, branch in reports
        ]
        results = self._call("update_task_statuses", json={"updates": updates}).json()["results"]
        errors: list[PpacerError | None] = []
        for result in results:
            if result["status"] == 200:
                errors.append(None)
            else:
                kind = _ERRORS.get(result["status"], PpacerError)
                errors.append(kind(result.get("error", "")))
        return errors

    def heartbeat(
        self,
        executor: str,
        lease_tokens: list[str],
        running: int = 0,
        capacity: int | None = None,
    ) -> list[str]:
        """Renew the leases of the attempts ``executor`` runs; return the tokens it lost."""
        body: dict[str, Any] = {"executor": executor, "leases": lease_tokens, "running": running}
        if capacity is not None:
            body["capacity"] = capacity
        return list(self._call("executor_heartbeat", json=body).json()["lost"])

    def get_state(self) -> SchedulerState:
        """The scheduler's state (RUNNING, ...)."""
        return SchedulerState(self._call("state").json()["state"])

    def trigger_dag_run(
        self,
        dag_id: str,
        params: dict[str, Any] | None = None,
        exec_ts: datetime | str | None = None,
    ) -> dict[str, Any]:
        """Start a run of ``dag_id`` now (or for the logical time ``exec_ts``).

        Returns ``{runId, dagId, execTs}``; a second run for the same logical
        time raises :class:`~ppacer.errors.ConflictError`.
        """
        body: dict[str, Any] = {"dagId": dag_id}
        if params is not None:
            body["params"] = params
        if exec_ts is not None:
            body["execTs"] = _ts(exec_ts)
        return dict(self._call("trigger_dag_run", json=body).json())

    def restart_dag_run(self, dag_id: str, exec_ts: datetime | str) -> dict[str, Any]:
        """Restart a FAILED run."""
        body = {"dagId": dag_id, "execTs": _ts(exec_ts)}
        return dict(self._call("restart_dag_run", json=body).json())

    def pause_dag(self, dag_id: str) -> None:
        """Pause a DAG: it creates no scheduled runs until unpaused."""
        self._call("pause_dag", json={"dagId": dag_id})

    def unpause_dag(self, dag_id: str) -> None:
        """Unpause a DAG; missed points follow its catch-up policy."""
        self._call("unpause_dag", json={"dagId": dag_id})

    def backfill(
        self,
        dag_id: str,
        start: datetime | str,
        end: datetime | str,
        max_active_runs: int = 4,
    ) -> dict[str, Any]:
        """Run ``dag_id``'s schedule points in ``[start, end]``, in order; returns the backfill."""
        body = {
            "dagId": dag_id,
            "from": _ts(start),
            "to": _ts(end),
            "maxActiveRuns": max_active_runs,
        }
        return dict(self._call("backfill_dag", json=body).json())

    def get_backfill(self, backfill_id: int) -> dict[str, Any]:
        """A backfill's progress and status, with the runs it created."""
        return dict(self._call("get_backfill", backfillId=backfill_id).json())

    def clear_task(self, dag_id: str, exec_ts: datetime | str, task_id: str) -> list[str]:
        """Run a task and its downstream again in a finished run; returns the cleared ids."""
        body = {"dagId": dag_id, "execTs": _ts(exec_ts), "taskId": task_id}
        return list(self._call("clear_task", json=body).json()["cleared"])

    def mark_task(
        self, dag_id: str, exec_ts: datetime | str, task_id: str, status: TaskStatus | str
    ) -> None:
        """Set a task's status to SUCCESS or FAILED by hand."""
        body = {"dagId": dag_id, "execTs": _ts(exec_ts), "taskId": task_id, "status": str(status)}
        self._call("mark_task", json=body)

    def schedule_preview(self, dag_id: str, n: int = 10) -> list[dict[str, str]]:
        """The DAG's next ``n`` schedule points, each ``{"utc", "local"}``."""
        return list(self._call("schedule_preview", params={"n": n}, dagId=dag_id).json()["points"])

    def dag_run_history(self, run_id: int, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """A page of who did what to a run, and when (oldest first)."""
        params = {"limit": limit, "offset": offset}
        return dict(self._call("dag_run_history", runId=run_id, params=params).json())

    def ui_dagrun_stats(self) -> dict[str, Any]:
        """Counts of runs and tasks by status, and queue lengths."""
        return dict(self._call("ui_dagrun_stats").json())

    def ui_dagrun_latest(self, n: int) -> list[dict[str, Any]]:
        """The latest ``n`` runs with their task completion."""
        return list(self._call("ui_dagrun_latest", n=n).json())

    def ui_dagrun_details(self, run_id: int) -> dict[str, Any]:
        """A run with its tasks, their configs and logs."""
        return dict(self._call("ui_dagrun_details", runId=run_id).json())

    def ui_dagrun_task_details(self, run_id: int, task_id: str, retry: int) -> dict[str, Any]:
        """One task attempt with its logs."""
        return dict(
            self._call("ui_dagrun_task_details", runId=run_id, taskId=task_id, retry=retry).json()
        )

    # Read endpoints (lists are pages: {"items", "total", "limit", "offset"}).

    def list_dags(self, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """A page of DAGs by id, with pause state, next schedule point and latest run."""
        return dict(self._call("list_dags", params={"limit": limit, "offset": offset}).json())

    def get_dag(self, dag_id: str) -> dict[str, Any]:
        """A DAG with its tasks (graph order) and its latest runs."""
        return dict(self._call("get_dag", dagId=dag_id).json())

    def list_dag_runs(
        self,
        dag_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """A page of DAG runs, newest first, optionally of one DAG and one status."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if dag_id is not None:
            params["dagId"] = dag_id
        if status is not None:
            params["status"] = str(status)
        return dict(self._call("list_dag_runs", params=params).json())

    def get_dag_run(self, run_id: int) -> dict[str, Any]:
        """A DAG run with its parameters and every task attempt."""
        return dict(self._call("get_dag_run", runId=run_id).json())

    def get_task_logs(
        self,
        run_id: int,
        task_id: str,
        retry: int | None = None,
        offset: int = 0,
        limit: int = 1000,
    ) -> dict[str, Any]:
        """Log records of a task attempt (the latest unless ``retry``) from ``offset`` on."""
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if retry is not None:
            params["retry"] = retry
        return dict(self._call("get_task_logs", params=params, runId=run_id, taskId=task_id).json())

    def list_executors(self, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """A page of the executors the scheduler has heard from, most recent first."""
        return dict(self._call("list_executors", params={"limit": limit, "offset": offset}).json())


def _ts(value: datetime | str) -> str:
    return format_ts(value) if isinstance(value, datetime) else value


def _error_text(response: httpx2.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip() or f"HTTP {response.status_code}"
    if isinstance(data, dict) and "error" in data:
        return str(data["error"])
    return response.text.strip()
