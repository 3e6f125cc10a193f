"""The scheduler's HTTP client: one method per endpoint, URLs from the shared route table.

HTTP itself, the failover between several URLs and the error mapping are in
:mod:`ppacer.api.transport`. Answers are the models of
:mod:`ppacer.api.schemas` (read by attribute, or by item as the JSON they came
as); the executor's endpoints use the wire dataclasses of
:mod:`ppacer.api.models` and :mod:`ppacer.api.checked`, which cost no
validation on the hot path: an executor never loads the answers' models
unless a scheduler answers something unexpected.
"""

from __future__ import annotations

import ssl
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ppacer.api import answers, checked
from ppacer.api.models import ACTOR_HEADER, PROTOCOL_VERSION, LogRecord, StatusReport, TaskToExec
from ppacer.api.routes import ROUTES, model_named
from ppacer.api.transport import HttpAnswer, Transport
from ppacer.dag.status import SchedulerState, TaskStatus
from ppacer.errors import (
    ERROR_BY_STATUS,
    InvalidInputError,
    PpacerError,
    ProtocolError,
    TLSError,
    UnauthorizedError,
)
from ppacer.lazy import lazy_module
from ppacer.timeutils import format_ts
from ppacer.version import __version__

if TYPE_CHECKING:
    from ppacer.api import schemas as s
    from ppacer.api.inprocess import InProcess
else:
    s = lazy_module("ppacer.api.schemas")

__all__ = ["Client", "HttpAnswer", "TLSError", "UnauthorizedError"]

_STATES = frozenset(SchedulerState)


_A = TypeVar("_A", bound="s.Answer")
_W = TypeVar("_W", bound=checked.WireInput)


class Client:
    """Talks to a ppacer scheduler (ours or the original) over HTTP or HTTPS. Thread-safe.

    An https:// URL is verified against the system's CAs, or against the PEM
    file ``ca_file`` (or the PEM text ``ca_data``) when given - a private CA or
    a self-signed certificate; ``ssl_context`` replaces all of that with a
    context of the caller's own.

    ``actor`` names who the scheduler records as having done the operator
    actions this client asks for (trigger, restart, clear, mark, pause,
    backfill): it is sent as the ``X-Ppacer-Actor`` header on every request
    (the scheduler's default is ``api``; the original scheduler ignores it).

    ``in_process`` (an :class:`~ppacer.api.inprocess.InProcess`) hands every
    call to a scheduler served by this very process, on its event loop, with
    no socket between them (the one-process start's executor); ``url`` then
    only names that scheduler.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 15.0,
        token: str | None = None,
        ca_file: str | None = None,
        ca_data: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        actor: str | None = None,
        in_process: InProcess | None = None,
    ) -> None:
        urls = tuple(u.strip().rstrip("/") for u in url.split(",") if u.strip())
        if not urls:
            raise InvalidInputError("url: no scheduler URL given")
        #: Every scheduler URL given (``"a,b"``: several schedulers of one database).
        self.urls = urls
        self.timeout_s = timeout_s
        #: The API token sent (kept so that a Dask worker can ship logs as this client does).
        self.token = token
        #: The CA file trusted for https:// (None: the system's CAs).
        self.ca_file = ca_file
        self.ca_data = ca_data
        #: Who the scheduler records as doing this client's operator actions (None: "api").
        self.actor = actor
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if actor:
            headers[ACTOR_HEADER] = actor
        context = ssl_context
        tls = any(u.startswith("https:") for u in urls)
        if context is None and tls and (ca_file or ca_data):
            try:
                context = ssl.create_default_context(cafile=ca_file, cadata=ca_data)
            except (OSError, ssl.SSLError) as exc:
                raise TLSError(
                    f"ca_file {ca_file or '(PEM text)'}: cannot be read as PEM: {exc}"
                ) from exc
        if in_process is not None and len(urls) > 1:
            raise InvalidInputError("url: a client in the scheduler's process names one URL")
        host = in_process.with_headers(headers) if in_process is not None else None
        self._transport = Transport(urls, timeout_s, headers, context, host)

    @property
    def url(self) -> str:
        """The scheduler URL in use (of :attr:`urls`, the one that answered last)."""
        url: str = self._transport.url
        return url

    def close(self) -> None:
        """Close the connections."""
        self._transport.close()

    def _call(self, name: str, **kwargs: Any) -> HttpAnswer:
        return self._transport.call(name, **kwargs)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _answer(self, model: type[_A], name: str, **kwargs: Any) -> _A:
        """Call ``name`` and read its answer as ``model`` (:class:`ProtocolError` if it is not)."""
        response = self._call(name, **kwargs)
        try:
            return model.model_validate(response.json())
        except ValueError as exc:  # not JSON, or pydantic's ValidationError
            raise self._not_ours(name, exc) from None

    def _read(self, wire: type[_W], name: str, **kwargs: Any) -> _W:
        """Call ``name`` and read its answer as ``wire`` (by hand, else by the route's
        model; :class:`ProtocolError` if it is not one)."""
        response = self._call(name, **kwargs)
        try:
            data = response.json()
            return checked.read(wire, data, lambda: model_named(ROUTES[name].answer_name or ""))
        except ValueError as exc:
            raise self._not_ours(name, exc) from None

    def _not_ours(self, name: str, exc: ValueError) -> ProtocolError:
        route = ROUTES[name]
        return ProtocolError(
            f"{route.method} {route.path}: the answer is not a ppacer scheduler's "
            f"({describe_answer_error(exc)}); is {self.url} a ppacer scheduler?"
        )

    # ------------------------------------------------------------------ executors

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

    def report(self, report: StatusReport) -> None:
        """Deliver one status report (``POST /dag/task/update``)."""
        self._call("update_task_status", json=report.to_json())

    def report_many(self, reports: list[StatusReport]) -> list[PpacerError | None]:
        """Deliver several reports in one request; per report, None or the error answered."""
        body = {"updates": [r.to_json() for r in reports]}
        results = self._call("update_task_statuses", json=body).json()["results"]
        return [
            None
            if result["status"] == 200
            else ERROR_BY_STATUS.get(result["status"], PpacerError)(result.get("error", ""))
            for result in results
        ]

    def report_and_pop(
        self, reports: list[StatusReport], executor: str, max_n: int = 1
    ) -> tuple[list[PpacerError | None], list[TaskToExec]]:
        """Deliver reports and take up to ``max_n`` ready attempts at once, in one request.

        Per report None or the error answered, then the attempts (leased to
        ``executor``, RUNNING). A scheduler without this endpoint answers 404
        (:class:`NotFoundError`). Not sent twice: an answer lost may have held attempts.
        """
        body = {"updates": [r.to_json() for r in reports], "executor": executor, "max": max_n}
        data = self._call("report_and_pop", json=body).json()
        errors = [
            None
            if result["status"] == 200
            else ERROR_BY_STATUS.get(result["status"], PpacerError)(result.get("error", ""))
            for result in data["results"]
        ]
        return errors, [TaskToExec.from_json(item) for item in data["tasks"]]

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
        self.report(StatusReport.for_task(task, status, error, output=output, branch=branch))

    def ship_logs(self, executor: str, records: list[LogRecord]) -> answers.LogsStored:
        """Ship task log records (``POST /dag/task/logs``); re-sent ones are stored once."""
        body = {"executor": executor, "records": [r.to_json() for r in records]}
        return self._read(answers.LogsStored, "ship_task_logs", json=body)

    def register_executor(
        self,
        executor: str,
        *,
        queues: list[str] | None = None,
        versions: dict[str, dict[str, str]] | None = None,
        labels: dict[str, str] | None = None,
        retained: dict[str, dict[str, list[str]]] | None = None,
    ) -> answers.Terms:
        """Tell the scheduler which queues ``executor`` serves and which task code it has.

        ``retained``: older code versions it still holds (after a hot reload), for
        the runs that started on them. Returns the scheduler's terms and what this
        executor lacks. A scheduler that takes no registrations (older, or the original)
        answers 404
        (:class:`~ppacer.errors.NotFoundError`); one of an older protocol 409.
        """
        body = {
            "executor": executor,
            "queues": queues or ["default"],
            "versions": versions or {},
            "labels": labels or {},
            "retained": retained or {},
            "ppacerVersion": __version__,
            "protocolVersion": PROTOCOL_VERSION,
        }
        return self._read(answers.Terms, "register_executor", json=body)

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

    # ------------------------------------------------------------------ runs and DAGs

    def get_state(self) -> SchedulerState:
        """The scheduler's state (RUNNING, ...)."""
        response = self._call("state")
        try:
            data = response.json()
            if isinstance(data, dict) and data.get("state") in _STATES:
                return SchedulerState(data["state"])
            return s.StateOut.model_validate(data).state
        except ValueError as exc:
            raise self._not_ours("state", exc) from None

    def trigger_dag_run(
        self,
        dag_id: str,
        params: dict[str, Any] | None = None,
        exec_ts: datetime | str | None = None,
    ) -> s.TriggerOut:
        """Start a run of ``dag_id`` now (or for the logical time ``exec_ts``).

        Returns ``{runId, dagId, execTs}``; a second run for the same logical
        time raises :class:`~ppacer.errors.ConflictError`. The original
        scheduler answers 200 with an empty body: then only ``dagId`` (and
        ``execTs`` if given) are known and ``runId`` is None.
        """
        body: dict[str, Any] = {"dagId": dag_id}
        if params is not None:
            body["params"] = params
        if exec_ts is not None:
            body["execTs"] = _ts(exec_ts)
        response = self._call("trigger_dag_run", json=body)
        if not response.content.strip():
            return s.TriggerOut(runId=None, dagId=dag_id, execTs=body.get("execTs"))
        return s.TriggerOut.model_validate(response.json())

    def restart_dag_run(self, dag_id: str, exec_ts: datetime | str) -> s.RestartOut:
        """Restart a FAILED run (the original answers with an empty body: ``restart`` is None)."""
        body = {"dagId": dag_id, "execTs": _ts(exec_ts)}
        response = self._call("restart_dag_run", json=body)
        if not response.content.strip():
            return s.RestartOut(dagId=dag_id, execTs=body["execTs"], restart=None)
        return s.RestartOut.model_validate(response.json())

    def pause_dag(self, dag_id: str) -> s.DagPausedOut:
        """Pause a DAG: it creates no scheduled runs until unpaused."""
        return self._answer(s.DagPausedOut, "pause_dag", json={"dagId": dag_id})

    def unpause_dag(self, dag_id: str) -> s.DagPausedOut:
        """Unpause a DAG; missed points follow its catch-up policy."""
        return self._answer(s.DagPausedOut, "unpause_dag", json={"dagId": dag_id})

    def backfill(
        self,
        dag_id: str,
        start: datetime | str,
        end: datetime | str,
        max_active_runs: int = 4,
    ) -> s.BackfillOut:
        """Run ``dag_id``'s schedule points in ``[start, end]``, in order; returns the backfill."""
        body = {
            "dagId": dag_id,
            "from": _ts(start),
            "to": _ts(end),
            "maxActiveRuns": max_active_runs,
        }
        return self._answer(s.BackfillOut, "backfill_dag", json=body)

    def get_backfill(self, backfill_id: int) -> s.BackfillOut:
        """A backfill's progress and status, with the runs it created."""
        return self._answer(s.BackfillOut, "get_backfill", backfillId=backfill_id)

    def clear_task(self, dag_id: str, exec_ts: datetime | str, task_id: str) -> list[str]:
        """Run a task and its downstream again in a finished run; returns the cleared ids."""
        body = {"dagId": dag_id, "execTs": _ts(exec_ts), "taskId": task_id}
        return list(self._answer(s.TaskClearedOut, "clear_task", json=body).cleared)

    def mark_task(
        self, dag_id: str, exec_ts: datetime | str, task_id: str, status: TaskStatus | str
    ) -> s.TaskMarkedOut:
        """Set a task's status to SUCCESS or FAILED by hand."""
        body = {"dagId": dag_id, "execTs": _ts(exec_ts), "taskId": task_id, "status": str(status)}
        return self._answer(s.TaskMarkedOut, "mark_task", json=body)

    def schedule_preview(self, dag_id: str, n: int = 10) -> list[dict[str, str]]:
        """The DAG's next ``n`` schedule points, each ``{"utc", "local"}``."""
        answer = self._answer(
            s.SchedulePreviewOut, "schedule_preview", params={"n": n}, dagId=dag_id
        )
        return list(answer["points"])

    def dag_run_history(self, run_id: int, limit: int = 50, offset: int = 0) -> s.RunEventListOut:
        """A page of who did what to a run, and when (oldest first)."""
        params = {"limit": limit, "offset": offset}
        return self._answer(s.RunEventListOut, "dag_run_history", runId=run_id, params=params)

    # ------------------------------------------------------------------ the original's UI data

    def ui_dagrun_stats(self) -> dict[str, Any]:
        """Counts of runs and tasks by status, and queue lengths (the original's shape)."""
        return dict(self._call("ui_dagrun_stats").json())

    def ui_dagrun_latest(self, n: int) -> list[dict[str, Any]]:
        """The latest ``n`` runs with their task completion (the original's shape)."""
        return list(self._call("ui_dagrun_latest", n=n).json())

    def ui_dagrun_details(self, run_id: int) -> dict[str, Any]:
        """A run with its tasks, their configs and logs (the original's shape)."""
        return dict(self._call("ui_dagrun_details", runId=run_id).json())

    def ui_dagrun_task_details(self, run_id: int, task_id: str, retry: int) -> dict[str, Any]:
        """One task attempt with its logs (the original's shape)."""
        return dict(
            self._call("ui_dagrun_task_details", runId=run_id, taskId=task_id, retry=retry).json()
        )

    # ------------------------------------------------------------------ reads (pages)

    def list_dags(self, limit: int = 50, offset: int = 0) -> s.DagListOut:
        """A page of DAGs by id, with pause state, next schedule point and latest run."""
        params = {"limit": limit, "offset": offset}
        return self._answer(s.DagListOut, "list_dags", params=params)

    def get_dag(self, dag_id: str) -> s.DagDetailsOut:
        """A DAG with its tasks (graph order) and its latest runs."""
        return self._answer(s.DagDetailsOut, "get_dag", dagId=dag_id)

    def list_dag_runs(
        self,
        dag_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> s.DagRunListOut:
        """A page of DAG runs, newest first, optionally of one DAG and one status."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if dag_id is not None:
            params["dagId"] = dag_id
        if status is not None:
            params["status"] = str(status)
        return self._answer(s.DagRunListOut, "list_dag_runs", params=params)

    def get_dag_run(self, run_id: int) -> s.DagRunDetailsOut:
        """A DAG run with its parameters and every task attempt."""
        return self._answer(s.DagRunDetailsOut, "get_dag_run", runId=run_id)

    def get_task_logs(
        self,
        run_id: int,
        task_id: str,
        retry: int | None = None,
        offset: int = 0,
        limit: int = 1000,
    ) -> s.TaskLogsOut:
        """Log records of a task attempt (the latest unless ``retry``) from ``offset`` on."""
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if retry is not None:
            params["retry"] = retry
        return self._answer(
            s.TaskLogsOut, "get_task_logs", params=params, runId=run_id, taskId=task_id
        )

    def list_executors(self, limit: int = 50, offset: int = 0) -> s.ExecutorListOut:
        """A page of the executors the scheduler has heard from, most recent first."""
        params = {"limit": limit, "offset": offset}
        return self._answer(s.ExecutorListOut, "list_executors", params=params)


def _ts(value: datetime | str) -> str:
    return format_ts(value) if isinstance(value, datetime) else value


def describe_answer_error(exc: ValueError) -> str:
    """What is wrong with an answer, in one short line."""
    if hasattr(exc, "error_count"):  # pydantic's ValidationError (not imported for this)
        invalid: Any = exc
        first = invalid.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        more = f" and {invalid.error_count() - 1} more" if invalid.error_count() > 1 else ""
        return f"{where}: {first['msg']}{more}"
    return f"not JSON: {exc}"
