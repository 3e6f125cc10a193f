"""Checks of an executor's status report against what the scheduler knows.

An executor may report RUNNING, SUCCESS or FAILED of the current attempt of a
task, holding the attempt's lease (a report without a token - the original
protocol - is taken as it comes). A repeated report is a no-op, so an executor
may send again whatever it is not sure arrived. Everything else is refused
with the error the API answers: :class:`InvalidInputError` (400) for a status
no executor reports, :class:`NotFoundError` (404) for unknown DAGs, tasks and
runs, :class:`ConflictError` (409) naming the current state otherwise.

Every check here is pure but :func:`check_inactive_report`, which reads the
finished run's rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from ppacer.api.models import StatusReport
from ppacer.dag.dag import Dag, Registry
from ppacer.dag.status import TaskStatus, check_task_transition
from ppacer.dag.task import MAX_OUTPUT_BYTES
from ppacer.db import dagruns as runs_db
from ppacer.db import dagruntasks as tasks_db
from ppacer.errors import ConflictError, InvalidInputError, NotFoundError
from ppacer.scheduler.leases import Lease
from ppacer.scheduler.runstate import RunState

__all__ = [
    "REPORTABLE",
    "Accepted",
    "check_inactive_report",
    "check_report",
    "check_report_target",
    "check_result",
]

#: The statuses an executor may report.
REPORTABLE = (TaskStatus.RUNNING, TaskStatus.SUCCESS, TaskStatus.FAILED)


@dataclass(frozen=True, slots=True)
class Accepted:
    """A report to apply, as the scheduler will apply it."""

    # The status before and after: a SUCCESS whose output or branch is wrong becomes FAILED.
    current: TaskStatus
    status: TaskStatus
    task_error: str | None


def check_report_target(registry: Registry, report: StatusReport) -> None:
    """Check that the report's status is one to report and its DAG and task exist."""
    if report.status not in REPORTABLE:
        raise InvalidInputError(
            f"status: {report.status} cannot be reported by an executor "
            f"(expected one of {', '.join(REPORTABLE)})"
        )
    dag = registry.get(report.dag_id)
    if dag is None:
        raise NotFoundError(f"dagId: unknown DAG {report.dag_id!r}")
    if report.task_id not in dag.tasks:
        raise NotFoundError(f"taskId: DAG {report.dag_id!r} has no task {report.task_id!r}")


def check_report(
    state: RunState,
    report: StatusReport,
    lease: Lease | None,
    attempt_token: str | None = None,
) -> Accepted | None:
    """Check a report on an active run (``lease``: the attempt's live lease, if any).

    ``attempt_token`` is the token this attempt's leases carry (derived from the
    attempt): a report with it is taken even when the lease is gone - its
    executor did the work while the scheduler could not take the report.

    Returns None for a repeated report (nothing to do), else what to apply;
    raises :class:`ConflictError` for a report on another attempt, with a
    stale lease token, or asking for a change the status table forbids.
    """
    task_id, retry, status = report.task_id, report.retry, report.status
    current = state.latest.get(task_id)
    if current is None or current[0] != retry:
        have = f"retry {current[0]} is {current[1]}" if current else "no attempt is scheduled"
        raise ConflictError(f"{_where(report)}: retry {retry} is not the current attempt ({have})")
    token = report.lease_token
    if (
        token is not None
        and token != attempt_token
        and (lease is None or lease.token != token)
        # The lease of an attempt reported final is closed, not gone: a repeat is fine.
        and state.closed_leases.get((task_id, retry)) != token
    ):
        held = f"held by executor {lease.executor}" if lease else "not leased"
        raise ConflictError(
            f"{_where(report)} retry {retry}: the lease token is stale "
            f"(the attempt is {current[1]}, {held})"
        )
    if current[1] == status:
        return None
    why = check_task_transition(current[1], status)
    if why is not None:
        raise ConflictError(f"{_where(report)} retry {retry}: {why}")
    if status is TaskStatus.SUCCESS:
        problem = check_result(state.dag, task_id, report.output, report.branch)
        if problem is not None:
            return Accepted(current[1], TaskStatus.FAILED, problem)
    return Accepted(current[1], status, report.task_error)


def _where(report: StatusReport) -> str:
    # Built only for an error: most reports pass.
    return f"task {report.task_id!r} of DAG {report.dag_id!r} run {report.exec_ts}"


def check_inactive_report(conn: Connection, report: StatusReport) -> None:
    """Check a report on a run that is not active: only a repeat of what is recorded passes."""
    dag_id, exec_ts = report.dag_id, report.exec_ts
    run = runs_db.read_dag_run_by_exec(conn, dag_id, exec_ts)
    if run is None:
        raise NotFoundError(f"execTs: DAG {dag_id!r} has no run at {exec_ts}")
    for a in tasks_db.read_dag_run_tasks(conn, dag_id, exec_ts):
        if a.task_id == report.task_id and a.retry == report.retry and a.status == report.status:
            return
    raise ConflictError(f"DAG {dag_id!r} run {exec_ts} is {run.status}; it takes no status reports")


def check_result(dag: Dag, task_id: str, output: Any, branch: list[str] | None) -> str | None:
    """What is wrong with a successful attempt's output or branch (None: nothing)."""
    if output is not None:
        try:
            size = len(json.dumps(output, allow_nan=False).encode())
        except (TypeError, ValueError) as exc:
            return f"OutputError: the value task {task_id!r} returned is not JSON: {exc}"
        if size > MAX_OUTPUT_BYTES:
            return (
                f"OutputError: the value task {task_id!r} returned is {size} bytes of JSON; "
                f"the limit is {MAX_OUTPUT_BYTES}"
            )
    if branch is not None:
        children = dag.tasks[task_id].children
        unknown = [b for b in branch if b not in children]
        if unknown:
            return (
                f"BranchError: task {task_id!r} chose {unknown}, which are not its children "
                f"(children: {list(children)})"
            )
    return None
