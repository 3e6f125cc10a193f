"""The read layer: runs, attempts, errors, sources and logs, read in one place.

The API's answers (:mod:`ppacer.server.api`), the original protocol's UI data
(:mod:`ppacer.server.original`) and the web UI's pages (:mod:`ppacer.ui.views`)
all present these views; the command line shows them through the API. What a
run is, which of its tasks never started, when an attempt is over and how log
lines are read is decided here and nowhere else.

Every read is bounded and served by an index (see :mod:`ppacer.db.dagruns`);
a missing run, task or attempt is a :class:`~ppacer.errors.NotFoundError`
naming the field that was wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from ppacer.dag.dag import Dag, Registry
from ppacer.dag.status import DagRunStatus, TaskStatus
from ppacer.db import controls as controls_db
from ppacer.db import dagruns as runs_db
from ppacer.db import dagruntasks as tasks_db
from ppacer.db import dags as dags_db
from ppacer.db import logsearch
from ppacer.db.dags import TaskRow, read_task_source
from ppacer.db.tasklogs import TaskLogLine, read_task_log_lines
from ppacer.errors import InvalidInputError, NotFoundError
from ppacer.redact import MASK, redact_urls
from ppacer.timeutils import format_ts, parse_ts

__all__ = [
    "AttemptView",
    "FoundLogLine",
    "LogPage",
    "LogSearchResult",
    "Reads",
    "RunView",
    "TaskView",
    "attempt_over",
    "redact_log_text",
    "seconds_between",
]


def attempt_over(status: TaskStatus) -> bool:
    """Whether an attempt has ended (a failed one waiting for a retry has: retries are new rows)."""
    return status.is_terminal or status is TaskStatus.FAILED_PENDING_RETRY


def redact_log_text(text: str, secrets: Collection[str] = ()) -> str:
    """Log text as it may be shown: URL passwords and each of ``secrets`` masked.

    ``secrets`` are the scheduler's own (its API token): a task that logged one
    must not hand it to whoever reads its logs.
    """
    shown = redact_urls(text)
    for secret in secrets:
        if secret and secret in shown:
            shown = shown.replace(secret, MASK)
    return shown


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from one stored timestamp to another (None if either is missing)."""
    if not start or not end:
        return None
    return (parse_ts(end) - parse_ts(start)).total_seconds()


@dataclass(frozen=True, slots=True)
class AttemptView:
    """One attempt of a task in a run, with its error."""

    task_id: str
    retry: int
    status: TaskStatus
    insert_ts: str
    status_update_ts: str
    error: str | None = None
    # When an executor took it (None: never handed out, or before this was recorded).
    start_ts: str | None = None
    # The executor that ran it, and the task's code version it ran (None: unknown).
    executor: str | None = None
    code_version: str | None = None

    @property
    def is_over(self) -> bool:
        """Whether the attempt has ended."""
        return attempt_over(self.status)

    @property
    def duration_s(self) -> float | None:
        """Run time: from when an executor took it (else from scheduled) to its final status."""
        if not self.is_over:
            return None
        return seconds_between(self.start_ts or self.insert_ts, self.status_update_ts)

    @property
    def queued_s(self) -> float | None:
        """Queue wait: from scheduled to when an executor took it (None: not known)."""
        return seconds_between(self.insert_ts, self.start_ts)


@dataclass(frozen=True, slots=True)
class RunView:
    """A run with every attempt, the tasks that never started, parameters and restarts."""

    run: runs_db.DagRunRow
    # The run's DAG as registered now (None: no longer in the registry).
    dag: Dag | None
    params: dict[str, Any]
    # Every attempt: tasks in graph order (tasks no longer in the DAG last), then by retry.
    attempts: tuple[AttemptView, ...]
    # Tasks of the DAG without any attempt yet, in graph order.
    not_started: tuple[str, ...]
    restarts: int
    # Whether the task scheduler is scheduling the run now.
    is_active: bool

    def latest(self) -> dict[str, AttemptView]:
        """The latest attempt of each task that has one, in graph order."""
        out: dict[str, AttemptView] = {}
        for a in self.attempts:
            out[a.task_id] = a
        return out

    @property
    def duration_s(self) -> float:
        """How long the run took (so far, at ``status_update_ts`` for an unfinished one)."""
        return seconds_between(self.run.insert_ts, self.run.status_update_ts) or 0.0


@dataclass(frozen=True, slots=True)
class TaskView:
    """One task of a run: its attempts, their errors and outputs, the source that ran."""

    run: runs_db.DagRunRow
    task_id: str
    attempts: tuple[AttemptView, ...]
    # The value each attempt returned (JSON text), by retry.
    outputs: dict[int, str]
    # The task's version that was current when the run was created.
    source: TaskRow | None
    in_dag: bool
    is_active: bool


@dataclass(frozen=True, slots=True)
class LogPage:
    """Log lines of one attempt from ``offset`` on, and whether more may come."""

    run: runs_db.DagRunRow
    task_id: str
    retry: int
    latest_retry: int
    # Every retry number the task has in the run, in order.
    retries: tuple[int, ...]
    # NO_STATUS: the attempt does not exist (yet).
    status: TaskStatus
    offset: int
    lines: list[TaskLogLine]
    # False when this scheduler has no logs DB (lines are then always empty).
    has_logs_db: bool

    @property
    def finished(self) -> bool:
        """The attempt's status is final: no more lines come."""
        return attempt_over(self.status)

    @property
    def next_offset(self) -> int:
        """The offset to ask from next."""
        return self.offset + len(self.lines)


@dataclass(frozen=True, slots=True)
class FoundLogLine:
    """A log line a search found, as it may be shown (message redacted)."""

    # None: no run of this DAG at this logical time (its row was removed, or another DB's).
    run_id: int | None
    dag_id: str
    # The run's logical time in stored form.
    exec_ts: str
    task_id: str
    retry: int
    # Its line number in the attempt's log, from 0 (the log view's ``#L<line>`` anchor).
    line: int
    insert_ts: str
    level: str
    message: str


@dataclass(frozen=True, slots=True)
class LogSearchResult:
    """A page of log search hits, newest first; ``has_more``: a next page has hits."""

    lines: list[FoundLogLine]
    has_more: bool
    # False when the scheduler keeps no logs DB (nothing is ever found).
    has_logs_db: bool = True


class Reads:
    """The reads of one scheduler: its databases, its registry and what it schedules now."""

    def __init__(
        self,
        engine: Engine,
        logs_engine: Engine | None,
        registry: Registry,
        is_active: Callable[[str, str], bool],
    ) -> None:
        self.engine = engine
        self.logs_engine = logs_engine
        self.registry = registry
        self._is_active = is_active

    # ------------------------------------------------------------------ runs

    def run(self, run_id: int) -> runs_db.DagRunRow:
        """The run, or :class:`NotFoundError`."""
        with self.engine.connect() as conn:
            run = runs_db.read_dag_run(conn, run_id)
        if run is None:
            raise NotFoundError(f"runId: no DAG run {run_id}")
        return run

    def run_view(self, run_id: int) -> RunView:
        """A run with every attempt and its error, its parameters and restarts."""
        with self.engine.connect() as conn:
            run = runs_db.read_dag_run(conn, run_id)
            if run is None:
                raise NotFoundError(f"runId: no DAG run {run_id}")
            rows = tasks_db.read_dag_run_tasks(conn, run.dag_id, run.exec_ts)
            errors = tasks_db.read_task_errors(conn, run.dag_id, run.exec_ts)
            params = runs_db.read_dag_run_params(conn, run.run_id)
            restarts = runs_db.count_restarts(conn, run.dag_id, run.exec_ts)
        dag = self.registry.get(run.dag_id)
        order = {task_id: i for i, task_id in enumerate(dag.tasks)} if dag is not None else {}
        attempts = sorted(
            (_attempt(a, errors) for a in rows),
            key=lambda a: (order.get(a.task_id, len(order)), a.retry),
        )
        started = {a.task_id for a in attempts}
        not_started = tuple(t for t in (dag.tasks if dag is not None else ()) if t not in started)
        return RunView(
            run=run,
            dag=dag,
            params=params,
            attempts=tuple(attempts),
            not_started=not_started,
            restarts=restarts,
            is_active=self._is_active(run.dag_id, run.exec_ts),
        )

    def task_view(self, run_id: int, task_id: str) -> TaskView:
        """A task of a run with every attempt and its source at the version the run used."""
        with self.engine.connect() as conn:
            run = runs_db.read_dag_run(conn, run_id)
            if run is None:
                raise NotFoundError(f"runId: no DAG run {run_id}")
            rows = tasks_db.read_task_attempts(conn, run.dag_id, run.exec_ts, task_id)
            errors = tasks_db.read_task_errors(conn, run.dag_id, run.exec_ts) if rows else {}
            outputs = tasks_db.read_task_outputs(conn, run.dag_id, run.exec_ts) if rows else {}
            source = read_task_source(conn, run.dag_id, task_id, run.insert_ts)
        dag = self.registry.get(run.dag_id)
        in_dag = dag is not None and task_id in dag.tasks
        if not rows and not in_dag and source is None:
            raise NotFoundError(f"taskId: DAG run {run_id} has no task {task_id!r}")
        return TaskView(
            run=run,
            task_id=task_id,
            attempts=tuple(_attempt(a, errors) for a in rows),
            outputs={retry: v for (t, retry), v in outputs.items() if t == task_id},
            source=source,
            in_dag=in_dag,
            is_active=self._is_active(run.dag_id, run.exec_ts),
        )

    def log_page(
        self, run_id: int, task_id: str, retry: int | None, *, offset: int = 0, limit: int = 1000
    ) -> LogPage:
        """Log lines of an attempt (the latest unless ``retry``) from ``offset`` on.

        A task the run neither has nor will have is a :class:`NotFoundError`;
        so is a ``retry`` the task has no attempt of (once it has any).
        """
        run = self.run(run_id)
        with self.engine.connect() as conn:
            rows = tasks_db.read_task_attempts(conn, run.dag_id, run.exec_ts, task_id)
        dag = self.registry.get(run.dag_id)
        if not rows and (dag is None or task_id not in dag.tasks):
            raise NotFoundError(f"taskId: DAG run {run_id} has no task {task_id!r}")
        latest = rows[-1].retry if rows else 0
        wanted = latest if retry is None else retry
        attempt = next((a for a in rows if a.retry == wanted), None)
        if attempt is None and retry is not None and rows:
            raise NotFoundError(f"retry: task {task_id!r} has no attempt {retry}")
        lines = []
        if attempt is not None:
            lines = self.log_lines(run, task_id, wanted, offset=offset, limit=limit)
        return LogPage(
            run=run,
            task_id=task_id,
            retry=wanted,
            latest_retry=latest,
            retries=tuple(a.retry for a in rows),
            status=attempt.status if attempt is not None else TaskStatus.NO_STATUS,
            offset=offset,
            lines=lines,
            has_logs_db=self.logs_engine is not None,
        )

    def log_lines(
        self,
        run: runs_db.DagRunRow,
        task_id: str,
        retry: int,
        *,
        offset: int = 0,
        limit: int = 1000,
    ) -> list[TaskLogLine]:
        """Log lines of an attempt in the order they were written (none without a logs DB)."""
        if self.logs_engine is None:
            return []
        with self.logs_engine.connect() as conn:
            return read_task_log_lines(
                conn, run.dag_id, run.exec_ts, task_id, retry, offset=offset, limit=limit
            )

    def runs_page(
        self,
        *,
        dag_id: str | None = None,
        statuses: Collection[DagRunStatus] = (),
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[runs_db.DagRunRow], int]:
        """A page of runs, newest first, and how many match in all."""
        with self.engine.connect() as conn:
            return runs_db.read_runs_page(
                conn, dag_id=dag_id, statuses=statuses, limit=limit, offset=offset
            )

    def latest_runs(self, n: int) -> list[runs_db.DagRunRow]:
        """The ``n`` latest runs, newest first."""
        with self.engine.connect() as conn:
            return runs_db.read_latest_dag_runs(conn, n)

    def task_counts(self, run_ids: Sequence[int]) -> dict[int, dict[str, int]]:
        """Latest attempts of each run's tasks by status."""
        with self.engine.connect() as conn:
            return tasks_db.count_tasks_by_run(conn, run_ids)

    def recent_runs(
        self, dag_ids: Sequence[str], per_dag: int
    ) -> dict[str, list[runs_db.DagRunRow]]:
        """The latest runs of each DAG (by logical time), newest first."""
        with self.engine.connect() as conn:
            return runs_db.read_recent_runs_by_dag(conn, dag_ids, per_dag)

    def run_events(self, run_id: int) -> list[controls_db.RunEventRow]:
        """Who did what to a run, oldest first."""
        with self.engine.connect() as conn:
            if runs_db.read_dag_run(conn, run_id) is None:
                raise NotFoundError(f"runId: no DAG run {run_id}")
            return controls_db.read_run_events(conn, run_id)

    def status_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Runs by status and task attempts by status."""
        with self.engine.connect() as conn:
            return runs_db.count_dag_runs_by_status(conn), tasks_db.count_tasks_by_status(conn)

    def running_attempts(self, limit: int) -> tuple[list[tasks_db.RunningAttempt], int]:
        """Attempts RUNNING now, longest running first, and how many there are."""
        with self.engine.connect() as conn:
            return tasks_db.read_running_attempts(conn, limit)

    def failed_runs(
        self, limit: int
    ) -> list[tuple[runs_db.DagRunRow, list[tasks_db.FailedAttempt]]]:
        """The latest FAILED runs, each with its failed attempts and their errors."""
        with self.engine.connect() as conn:
            runs, _ = runs_db.read_runs_page(conn, statuses=[DagRunStatus.FAILED], limit=limit)
            failures = tasks_db.read_failed_attempts(conn, runs)
        by_run: dict[int, list[tasks_db.FailedAttempt]] = {}
        for f in failures:
            by_run.setdefault(f.run_id, []).append(f)
        return [(run, by_run.get(run.run_id, [])) for run in runs]

    # ------------------------------------------------------------------ DAGs

    def paused_dags(self) -> set[str]:
        """Ids of the paused DAGs."""
        with self.engine.connect() as conn:
            return controls_db.read_paused_dags(conn)

    def task_sources(self, run: runs_db.DagRunRow, task_ids: Collection[str]) -> dict[str, TaskRow]:
        """The versions of tasks that were current when ``run`` was created."""
        out: dict[str, TaskRow] = {}
        with self.engine.connect() as conn:
            for task_id in task_ids:
                row = read_task_source(conn, run.dag_id, task_id, run.insert_ts)
                if row is not None:
                    out[task_id] = row
        return out

    def backfill(self, backfill_id: int) -> tuple[controls_db.BackfillRow, list[int]]:
        """A backfill and the runs it created."""
        with self.engine.connect() as conn:
            row = controls_db.read_backfill(conn, backfill_id)
            run_ids = controls_db.read_backfill_run_ids(conn, backfill_id) if row else []
        if row is None:
            raise NotFoundError(f"backfillId: no backfill {backfill_id}")
        return row, run_ids

    # ------------------------------------------------------------------ DAG page, search

    def dag_runs(
        self, dag_id: str, *, before: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[runs_db.DagRunRow]:
        """A DAG's runs by logical time, newest first (keyset pages: ``before``/``after``)."""
        with self.engine.connect() as conn:
            return runs_db.read_dag_runs_window(
                conn, dag_id, before=before, after=after, limit=limit
            )

    def run_attempts(
        self, dag_id: str, exec_ts: Sequence[str]
    ) -> dict[str, list[tasks_db.AttemptTimes]]:
        """The times and status of every attempt of some runs of a DAG, by the run's
        logical time (in task and retry order)."""
        with self.engine.connect() as conn:
            return tasks_db.read_attempts_of_runs(conn, dag_id, exec_ts)

    def adjacent_runs(
        self, run: runs_db.DagRunRow
    ) -> tuple[runs_db.DagRunRow | None, runs_db.DagRunRow | None]:
        """The runs of the same DAG just before and after ``run`` by logical time."""
        with self.engine.connect() as conn:
            return runs_db.read_adjacent_runs(conn, run.dag_id, run.exec_ts)

    def runs_params(self, run_ids: list[int]) -> dict[int, dict[str, Any]]:
        """The parameters of those of these runs that were given any."""
        with self.engine.connect() as conn:
            return runs_db.read_dag_runs_params(conn, run_ids)

    def task_versions(self, dag_id: str, task_id: str, limit: int = 20) -> list[TaskRow]:
        """A task's stored versions, newest first (the current one first)."""
        with self.engine.connect() as conn:
            return dags_db.read_task_versions(conn, dag_id, task_id, limit)

    def task_version_counts(self, dag_id: str) -> dict[str, tuple[int, str]]:
        """Per task of a DAG: versions stored and when the latest was stored."""
        with self.engine.connect() as conn:
            return dags_db.read_task_version_counts(conn, dag_id)

    def known_dag_ids(self) -> list[str]:
        """Every DAG id the database has seen (removed DAGs included), sorted."""
        with self.engine.connect() as conn:
            return dags_db.read_dag_ids(conn)

    def search_runs_of_dag(
        self,
        dag_id: str,
        *,
        statuses: Collection[DagRunStatus] = (),
        from_ts: str | None = None,
        to_ts: str | None = None,
        params_like: Sequence[Sequence[str]] = (),
        limit: int = 50,
    ) -> list[tuple[runs_db.DagRunRow, str | None]]:
        """A DAG's runs in a logical-time range (and statuses), newest first, with the JSON
        text of their parameters (see :func:`ppacer.db.dagruns.search_dag_runs`)."""
        with self.engine.connect() as conn:
            return runs_db.search_dag_runs(
                conn,
                dag_id,
                statuses=statuses,
                from_ts=from_ts,
                to_ts=to_ts,
                params_like=params_like,
                limit=limit,
            )

    def search_logs(
        self,
        query: str,
        *,
        dag_id: str | None = None,
        task_id: str | None = None,
        min_level: str | None = None,
        from_ts: str | None = None,
        to_ts: str | None = None,
        limit: int = 50,
        offset: int = 0,
        secrets: Collection[str] = (),
    ) -> LogSearchResult:
        """Log lines matching ``query`` (see :mod:`ppacer.db.logsearch`), newest first, each
        with its run and line number, messages redacted (URL passwords, ``secrets``).

        Lines logged in ``[from_ts, to_ts)`` (stored timestamps) at ``min_level`` or
        above, of a DAG and a task if given. A query without a word (letters or
        digits) is an :class:`InvalidInputError`.
        """
        terms = logsearch.parse_query(query)
        if not terms:
            raise InvalidInputError(f"q: no words to search for in {query!r} (letters or digits)")
        if min_level is not None and min_level.upper() not in logsearch.LEVEL_RANK:
            raise InvalidInputError(
                f"level: one of {', '.join(logsearch.LEVEL_RANK)}, got {min_level!r}"
            )
        filters = logsearch.LogFilters(dag_id, task_id, min_level, from_ts, to_ts)
        if self.logs_engine is None:
            return LogSearchResult([], False, has_logs_db=False)
        with self.logs_engine.connect() as conn:
            page = logsearch.search_logs(conn, terms, filters, limit=limit, offset=offset)
            stored = {hit: _stored_ts(hit.exec_ts) for hit in page.hits}
            lines = [logsearch.line_position(conn, hit, stored[hit]) for hit in page.hits]
        with self.engine.connect() as conn:
            run_ids = runs_db.read_run_ids_by_exec(
                conn, {(hit.dag_id, ts) for hit, ts in stored.items()}
            )
        found = [
            FoundLogLine(
                run_ids.get((hit.dag_id, stored[hit])),
                hit.dag_id,
                stored[hit],
                hit.task_id,
                hit.retry,
                line,
                hit.insert_ts,
                hit.level,
                redact_log_text(hit.message, secrets),
            )
            for hit, line in zip(page.hits, lines, strict=True)
        ]
        return LogSearchResult(found, page.has_more)


def _attempt(row: tasks_db.DagRunTaskRow, errors: dict[tuple[str, int], str]) -> AttemptView:
    return AttemptView(
        row.task_id,
        row.retry,
        row.status,
        row.insert_ts,
        row.status_update_ts,
        errors.get((row.task_id, row.retry)),
        row.start_ts,
        row.executor,
        row.code_version,
    )


def _stored_ts(text: str) -> str:
    """A timestamp as stored by this ppacer (rows of the original's executor trim it)."""
    try:
        return format_ts(parse_ts(text))
    except ValueError:
        return text
