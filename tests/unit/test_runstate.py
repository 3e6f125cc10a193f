"""The readiness rules of a run, driven the way the task scheduler drives them: no database.

Expected outcomes come from the documented meaning of each trigger rule
(``TriggerRule``'s docstring), written out once below as ``documented``; the
run state must reach them through its event-driven counters, whatever order
the parents finish in.
"""

from __future__ import annotations

import itertools

import pytest

import ppacer
from ppacer import Node, TaskConfig, TriggerRule
from ppacer.dag.status import DagRunStatus, TaskStatus
from ppacer.scheduler.runstate import RunState

S, F, U, K = TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.UPSTREAM_FAILED, TaskStatus.SKIPPED
RUN = TaskStatus.SCHEDULED
EXEC_TS = "2026-01-01T00:00:00.000000UTC+00:00"


class Noop(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> None:
        return None


def node(task_id: str, rule: TriggerRule = TriggerRule.ALL_SUCCESS, **config: int) -> Node:
    return Node(Noop(task_id), TaskConfig(**config) if config else None, trigger_rule=rule)


def documented(rule: TriggerRule, parents: list[TaskStatus | None]) -> TaskStatus | None:
    """What the docs say a task with ``rule`` does, given its parents (None: not finished)."""
    finished = all(p is not None for p in parents)
    failed = any(p in (F, U) for p in parents)
    if rule is TriggerRule.ALL_SUCCESS:  # a failed parent: upstream-failed; a skipped: skipped
        if failed:
            return U
        if K in parents:
            return K
        return RUN if finished else None
    if rule is TriggerRule.ALL_DONE:  # every parent finished, however it ended
        return RUN if finished else None
    if rule is TriggerRule.ONE_FAILED:  # as soon as one parent failed, else skipped
        if failed:
            return RUN
        return K if finished else None
    if rule is TriggerRule.ONE_SUCCESS:  # as soon as one succeeded, else U (or K: none failed)
        if S in parents:
            return RUN
        if not finished:
            return None
        return U if failed else K
    if rule is TriggerRule.NONE_FAILED:  # every parent succeeded or was skipped
        if failed:
            return U
        return RUN if finished else None
    raise AssertionError(f"trigger rule {rule} is not documented in this test")


def new_run(root: Node) -> RunState:
    """A new run of a DAG made of ``root``, its first tasks started."""
    dag = ppacer.Dag("d", root=root).done()
    state = RunState(1, dag, EXEC_TS, DagRunStatus.SCHEDULED, {})
    state.start(state.settle_unstarted().ready)
    return state


def finish(
    state: RunState, task_id: str, status: TaskStatus, branch: list[str] | None = None
) -> tuple[list[str], dict[str, TaskStatus]]:
    """Finish ``task_id`` as the scheduler does; start what became ready.

    Returns the tasks started and the tasks settled without running.
    """
    retry = state.latest[task_id][0] if task_id in state.latest else 0
    state.latest[task_id] = (retry, status)
    state.unfinished -= 1
    skip = () if branch is None else state.skipped_by_branch(task_id, branch)
    settlement = state.settle_children(task_id, skip)
    state.start(settlement.ready)
    return settlement.ready, {t: s for t, _, s in settlement.settled}


def fan_in(rule: TriggerRule, parents: int = 3) -> RunState:
    """root -> p0..pN -> child (with ``rule``), with root done and the parents running."""
    root, child = node("root"), node("child", rule)
    for i in range(parents):
        root.next(node(f"p{i}")).next(child)
    state = new_run(root)
    finish(state, "root", S)
    return state


def test_every_trigger_rule_is_documented_here() -> None:
    for rule in TriggerRule:
        documented(rule, [S])  # raises for a rule this test does not know


@pytest.mark.parametrize("rule", list(TriggerRule))
@pytest.mark.parametrize("outcomes", list(itertools.product([S, F, U, K], repeat=3)))
def test_a_task_is_decided_the_moment_its_rule_can_tell(
    rule: TriggerRule, outcomes: tuple[TaskStatus, ...]
) -> None:
    state = fan_in(rule)
    seen: list[TaskStatus | None] = [None, None, None]
    decided = None
    for i, outcome in enumerate(outcomes):
        seen[i] = outcome
        started, settled = finish(state, f"p{i}", outcome)
        now = RUN if "child" in started else settled.get("child")
        expected = documented(rule, seen) if decided is None else None
        assert now == expected, f"after parents {seen}"
        decided = decided or now
    # Finished, however it ended: either it runs or it settled, never both or neither.
    assert decided is not None
    assert state.latest["child"][1] == (TaskStatus.SCHEDULED if decided is RUN else decided)
    assert "child" not in state.waiting


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_a_task_without_parents_runs_whatever_its_rule(rule: TriggerRule) -> None:
    state = new_run(node("only", rule))
    assert state.latest == {"only": (0, TaskStatus.SCHEDULED)}


def test_a_failure_cascades_upstream_failed_down_to_the_error_handler() -> None:
    extract = node("extract")
    transform = extract.next(node("transform"))
    transform.next(node("load")).next(node("publish"))
    transform.next(node("alert", TriggerRule.ONE_FAILED))
    state = new_run(extract)
    started, settled = finish(state, "extract", F)
    # Everything downstream that needs success cannot run; the handler runs.
    assert settled == {"transform": U, "load": U, "publish": U}
    assert started == ["alert"]
    assert state.unfinished == 1  # only the handler is left
    assert not state.waiting


def test_a_branch_skips_the_children_not_followed_and_what_only_they_lead_to() -> None:
    choose = node("choose")
    merge = node("merge", TriggerRule.NONE_FAILED)
    choose.next(node("left")).next(node("left_end")).next(merge)
    choose.next(node("right")).next(node("right_end")).next(merge)
    state = new_run(choose)
    started, settled = finish(state, "choose", S, branch=["left"])
    assert started == ["left"]
    assert settled == {"right": K, "right_end": K}
    assert finish(state, "left", S) == (["left_end"], {})
    # A skipped branch does not stop a none_failed join.
    assert finish(state, "left_end", S) == (["merge"], {})


def test_a_skipped_parent_skips_an_all_success_child_but_not_an_all_done_one() -> None:
    choose = node("choose")
    step = choose.next(node("step"))
    step.next(node("strict"))
    step.next(node("lenient", TriggerRule.ALL_DONE))
    state = new_run(choose)
    started, settled = finish(state, "choose", S, branch=[])  # follows no child
    assert settled == {"step": K, "strict": K} and started == ["lenient"]


def run_to_end(root: Node, outcomes: dict[str, TaskStatus]) -> RunState:
    """Finish every started task with its outcome (default SUCCESS) until nothing is left."""
    state = new_run(root)
    running = [t for t, (_, s) in state.latest.items() if s is TaskStatus.SCHEDULED]
    while running:
        task_id = running.pop(0)
        started, _ = finish(state, task_id, outcomes.get(task_id, S))
        running += started
    assert state.unfinished == 0
    return state


def pipeline() -> Node:
    work = node("work")
    work.next(node("after"))
    work.next(node("handler", TriggerRule.ONE_FAILED))
    return work


def test_a_run_that_only_succeeded_or_skipped_did_not_fail() -> None:
    assert not run_to_end(pipeline(), {}).is_failed()  # the handler was skipped


def test_a_failure_fails_the_run() -> None:
    root = node("work")
    root.next(node("after"))
    assert run_to_end(root, {"work": F}).is_failed()


def test_a_handled_failure_still_fails_the_run_when_other_tasks_could_not_run() -> None:
    state = run_to_end(pipeline(), {"work": F})
    assert state.latest["handler"][1] is S
    assert state.latest["after"][1] is U
    assert state.is_failed()


def test_a_failure_handled_by_a_successful_one_failed_child_does_not_fail_the_run() -> None:
    work = node("work")
    work.next(node("handler", TriggerRule.ONE_FAILED))
    assert not run_to_end(work, {"work": F}).is_failed()
    assert run_to_end(work, {"work": F, "handler": F}).is_failed()


@pytest.mark.parametrize("retries", [0, 1, 3])
@pytest.mark.parametrize("restarts", [0, 1, 2])
def test_each_restart_grants_the_full_retry_budget_again(retries: int, restarts: int) -> None:
    state = new_run(node("t", retries=retries))
    state.restarts = restarts
    attempts = 1
    while state.retry_allowed("t", attempts - 1):
        attempts += 1
    assert attempts == (retries + 1) * (restarts + 1)


def test_restore_keeps_each_tasks_latest_attempt_and_resets_what_runs_again() -> None:
    root = node("a")
    root.next(node("b")).next(node("c"))
    dag = ppacer.Dag("d", root=root).done()
    state = RunState(1, dag, EXEC_TS, DagRunStatus.RUNNING, {})
    rows = [
        ("a", 0, F),
        ("a", 1, S),
        ("b", 1, TaskStatus.FAILED_PENDING_RETRY),
        ("b", 0, F),
        ("c", 0, F),
        ("gone", 0, S),  # a task no longer in the DAG
    ]
    open_attempts = state.restore(rows, reset={"c"})
    assert state.latest == {"a": (1, S), "b": (1, TaskStatus.FAILED_PENDING_RETRY)}
    assert state.next_retry == {"c": 1}
    assert open_attempts == [("b", 1, TaskStatus.FAILED_PENDING_RETRY)]
    settlement = state.settle_unstarted()
    assert settlement.ready == [] and settlement.settled == []
    assert state.waiting == {"c": 1} and state.unfinished == 2


def test_a_recovered_run_settles_what_a_failure_left_without_rows() -> None:
    root = node("a")
    root.next(node("b")).next(node("c"))
    dag = ppacer.Dag("d", root=root).done()
    state = RunState(1, dag, EXEC_TS, DagRunStatus.RUNNING, {})
    state.restore([("a", 0, F)])
    settlement = state.settle_unstarted()
    assert settlement.settled == [("b", 0, U), ("c", 0, U)]
    assert state.unfinished == 0 and state.is_failed()


def test_failing_a_run_early_settles_every_task_without_an_attempt() -> None:
    root = node("a")
    root.next(node("b")).next(node("c"))
    state = new_run(root)
    assert state.fail_unstarted() == [("b", 0, U), ("c", 0, U)]
    assert not state.waiting and state.latest["a"] == (0, TaskStatus.SCHEDULED)


def test_a_task_gets_the_values_of_its_succeeded_parents_only() -> None:
    root = node("root")
    child = node("child", TriggerRule.ALL_DONE)
    root.next(node("good")).next(child)
    root.next(node("bad")).next(child)
    state = new_run(root)
    finish(state, "root", S)
    state.outputs["good"] = {"rows": 3}
    finish(state, "good", S)
    finish(state, "bad", F)
    assert state.upstream_outputs("child") == {"good": {"rows": 3}}
