"""Checks of executors' status reports against a run's state: pure, no database."""

from __future__ import annotations

import pytest

import ppacer
from ppacer import Node
from ppacer.api.models import StatusReport
from ppacer.dag.status import DagRunStatus, TaskStatus, check_task_transition
from ppacer.dag.task import MAX_OUTPUT_BYTES
from ppacer.errors import ConflictError, InvalidInputError, NotFoundError
from ppacer.scheduler.leases import Lease
from ppacer.scheduler.reports import (
    REPORTABLE,
    Accepted,
    check_report,
    check_report_target,
    check_result,
)
from ppacer.scheduler.runstate import RunState

EXEC_TS = "2026-01-01T00:00:00.000000UTC+00:00"


class Noop(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> None:
        return None


def make_dag() -> ppacer.Dag:
    choose = Node(Noop("choose"))
    choose.next(Node(Noop("left")))
    choose.next(Node(Noop("right")))
    return ppacer.Dag("etl", root=choose).done()


def running(retry: int = 0, status: TaskStatus = TaskStatus.RUNNING) -> RunState:
    """A run whose ``choose`` task's attempt ``retry`` is ``status``."""
    state = RunState(1, make_dag(), EXEC_TS, DagRunStatus.RUNNING, {})
    state.latest["choose"] = (retry, status)
    return state


def lease(token: str, retry: int = 0, executor: str = "x") -> Lease:
    return Lease(token, ("etl", EXEC_TS, "choose", retry), executor, 0.0, 30.0, 600.0)


def report(status: TaskStatus, retry: int = 0, **extra: object) -> StatusReport:
    return StatusReport("etl", EXEC_TS, "choose", retry, status, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [s for s in TaskStatus if s not in REPORTABLE])
def test_an_executor_may_not_report_what_only_the_scheduler_decides(status: TaskStatus) -> None:
    registry = ppacer.Registry([make_dag()])
    with pytest.raises(InvalidInputError, match=f"status: {status} cannot be reported"):
        check_report_target(registry, report(status))


def test_reports_on_unknown_dags_and_tasks_are_not_found() -> None:
    registry = ppacer.Registry([make_dag()])
    unknown_dag = StatusReport("nope", EXEC_TS, "choose", 0, TaskStatus.SUCCESS)
    with pytest.raises(NotFoundError, match="dagId: unknown DAG 'nope'"):
        check_report_target(registry, unknown_dag)
    unknown_task = StatusReport("etl", EXEC_TS, "nope", 0, TaskStatus.SUCCESS)
    with pytest.raises(NotFoundError, match="taskId: DAG 'etl' has no task 'nope'"):
        check_report_target(registry, unknown_task)
    for status in REPORTABLE:
        check_report_target(registry, report(status))


def test_a_report_on_another_attempt_is_a_conflict_naming_the_current_one() -> None:
    with pytest.raises(ConflictError, match=r"retry 0 is not the current attempt \(retry 1 is"):
        check_report(running(retry=1), report(TaskStatus.SUCCESS, retry=0), None)
    no_attempt = RunState(1, make_dag(), EXEC_TS, DagRunStatus.RUNNING, {})
    with pytest.raises(ConflictError, match="no attempt is scheduled"):
        check_report(no_attempt, report(TaskStatus.SUCCESS), None)


def test_a_stale_lease_token_is_a_conflict_naming_who_holds_the_lease() -> None:
    state = running()
    with pytest.raises(ConflictError, match=r"the lease token is stale .*held by executor y"):
        check_report(state, report(TaskStatus.SUCCESS, lease_token="old"), lease("new", 0, "y"))
    with pytest.raises(ConflictError, match=r"the lease token is stale .*not leased"):
        check_report(state, report(TaskStatus.SUCCESS, lease_token="old"), None)


def test_a_report_without_a_token_is_taken_as_it_comes() -> None:
    accepted = check_report(running(), report(TaskStatus.SUCCESS), lease("held"))
    assert accepted == Accepted(TaskStatus.RUNNING, TaskStatus.SUCCESS, None)


def test_a_repeated_report_is_a_no_op_even_after_its_lease_closed() -> None:
    state = running(status=TaskStatus.SUCCESS)
    state.closed_leases[("choose", 0)] = "tok"
    assert check_report(state, report(TaskStatus.SUCCESS, lease_token="tok"), None) is None
    assert check_report(running(), report(TaskStatus.RUNNING, lease_token="t"), lease("t")) is None


@pytest.mark.parametrize("current", list(TaskStatus))
@pytest.mark.parametrize("new", REPORTABLE)
def test_a_report_follows_the_one_status_table(current: TaskStatus, new: TaskStatus) -> None:
    state = running(status=current)
    why = check_task_transition(current, new)
    if current == new:
        assert check_report(state, report(new), None) is None
    elif why is None:
        assert check_report(state, report(new, task_error="e"), None) == Accepted(current, new, "e")
    else:
        with pytest.raises(ConflictError) as exc:
            check_report(state, report(new), None)
        assert str(exc.value).endswith(why)


def test_a_success_with_a_bad_output_or_branch_is_taken_as_a_failure() -> None:
    state = running()
    not_json = check_report(state, report(TaskStatus.SUCCESS, output={1, 2}), None)
    assert not_json is not None and not_json.status is TaskStatus.FAILED
    assert (not_json.task_error or "").startswith("OutputError: the value task 'choose' returned")
    too_big = check_report(state, report(TaskStatus.SUCCESS, output="x" * MAX_OUTPUT_BYTES), None)
    assert too_big is not None and too_big.status is TaskStatus.FAILED
    assert f"the limit is {MAX_OUTPUT_BYTES}" in (too_big.task_error or "")
    bad_branch = check_report(state, report(TaskStatus.SUCCESS, branch=["left", "up"]), None)
    assert bad_branch is not None and bad_branch.status is TaskStatus.FAILED
    assert "BranchError: task 'choose' chose ['up']" in (bad_branch.task_error or "")
    good = check_report(state, report(TaskStatus.SUCCESS, output=[1], branch=["left"]), None)
    assert good == Accepted(TaskStatus.RUNNING, TaskStatus.SUCCESS, None)


def test_check_result_accepts_nothing_returned_and_any_children_chosen() -> None:
    dag = make_dag()
    assert check_result(dag, "choose", None, None) is None
    assert check_result(dag, "choose", {"ok": True}, ["left", "right"]) is None
    assert check_result(dag, "choose", float("nan"), None) is not None
