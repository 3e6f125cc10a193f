"""The read layer: runs, attempts, errors, sources and logs, read in one place.

The API's answers (:mod:`ppacer.server.api`), the original protocol's UI data
(:mod:`ppacer.server.original`) and the web UI's pages (:mod:`ppacer.ui.views`)
all present these views; the command line shows them through the API. What a
run is, which of its tasks never started and when an attempt is over is decided
here and nowhere else; how log lines are read and searched, in
:mod:`ppacer.scheduler.log_reads` (``Reads`` is a ``LogReads``).

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
from ppacer.db.dags import TaskRow, read_task_source
from ppacer.errors import NotFoundError
from ppacer.scheduler.log_reads import LogReads, attempt_over
from ppacer.timeutils import parse_ts

__all__ = [
    "AttemptView",
    "Reads",
    "RunView",
    "TaskView",
    "attempt_over",
    "seconds_between",
]


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


class Reads(LogReads):
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

    def runs_page(
        self,
        *,
        dag_id: str | None = None,
        statuses: Collection[DagRunStatus] = (),
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[runs_db.DagRunRow], int]:
        """A page of runs, newest logical time first, and how many match in all."""
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
