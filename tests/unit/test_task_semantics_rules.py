"""The pure rules behind task semantics: trigger rules, the status table, retry delays,
leases and notification templates."""

from __future__ import annotations

import pytest

import ppacer
from ppacer import TaskConfig, TriggerRule
from ppacer.dag.status import TaskStatus, check_task_transition
from ppacer.notify import Message
from ppacer.scheduler.leases import LeaseTable

S, F, U, K = TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.UPSTREAM_FAILED, TaskStatus.SKIPPED
RUN = TaskStatus.SCHEDULED


@pytest.mark.parametrize(
    ("rule", "parents", "expected"),
    [
        (TriggerRule.ALL_SUCCESS, [S, S], RUN),
        (TriggerRule.ALL_SUCCESS, [S, None], None),
        (TriggerRule.ALL_SUCCESS, [F, None], U),  # no need to wait for the other
        (TriggerRule.ALL_SUCCESS, [U, S], U),
        (TriggerRule.ALL_SUCCESS, [K, S], K),
        (TriggerRule.ALL_DONE, [F, K], RUN),
        (TriggerRule.ALL_DONE, [S, None], None),
        (TriggerRule.ONE_FAILED, [F, None], RUN),
        (TriggerRule.ONE_FAILED, [S, None], None),
        (TriggerRule.ONE_FAILED, [S, K], K),
        (TriggerRule.ONE_SUCCESS, [S, None], RUN),
        (TriggerRule.ONE_SUCCESS, [F, K], U),
        (TriggerRule.ONE_SUCCESS, [K, K], K),
        (TriggerRule.ONE_SUCCESS, [F, None], None),
        (TriggerRule.NONE_FAILED, [S, K], RUN),
        (TriggerRule.NONE_FAILED, [S, F], U),
        (TriggerRule.NONE_FAILED, [K, None], None),
    ],
)
def test_trigger_rule_decisions(rule, parents, expected):
    assert rule.decide(parents) == expected


def test_unknown_trigger_rule_is_an_error_naming_the_task():
    with pytest.raises(ValueError, match=r"task 'x': unknown trigger rule 'sometimes'"):
        ppacer.Node(ppacer.task(lambda ctx: None, id="x"), trigger_rule="sometimes")


@pytest.mark.parametrize(
    ("current", "new", "ok"),
    [
        (TaskStatus.SCHEDULED, TaskStatus.RUNNING, True),
        (TaskStatus.RUNNING, TaskStatus.SUCCESS, True),
        (TaskStatus.RUNNING, TaskStatus.FAILED, True),
        (TaskStatus.SCHEDULED, TaskStatus.SUCCESS, True),
        (TaskStatus.SUCCESS, TaskStatus.RUNNING, False),
        (TaskStatus.FAILED, TaskStatus.SCHEDULED, False),
        (TaskStatus.RUNNING, TaskStatus.SCHEDULED, False),
        (TaskStatus.SKIPPED, TaskStatus.RUNNING, False),
        (None, TaskStatus.RUNNING, False),
    ],
)
def test_the_one_status_table(current, new, ok):
    why = check_task_transition(current, new)
    assert (why is None) == ok
    if not ok and current is not None:
        assert str(current) in why and str(new) in why


def test_marking_by_hand_allows_success_and_failed_only():
    assert check_task_transition(TaskStatus.FAILED, TaskStatus.SUCCESS, by="hand") is None
    assert check_task_transition(TaskStatus.SUCCESS, TaskStatus.FAILED, by="hand") is None
    assert "SUCCESS or FAILED" in (
        check_task_transition(TaskStatus.FAILED, TaskStatus.RUNNING, by="hand") or ""
    )


def test_the_scheduler_may_also_requeue_fail_and_cancel_retries_but_never_revive():
    T = TaskStatus
    # Its own decisions: recovery requeues, a lost lease or a deadline fails, a
    # deadline cancels a pending retry. Executors may do none of these.
    for current, new in [
        (T.RUNNING, T.SCHEDULED),
        (T.FAILED_PENDING_RETRY, T.FAILED),
    ]:
        assert check_task_transition(current, new, by="scheduler") is None
        assert check_task_transition(current, new) is not None
    # Everything an executor may report, the scheduler may write.
    for current in (T.SCHEDULED, T.RUNNING):
        for new in (T.SUCCESS, T.FAILED, T.FAILED_PENDING_RETRY):
            assert check_task_transition(current, new, by="scheduler") is None
    # A finished attempt never changes, whoever asks (but by hand).
    for current in (T.SUCCESS, T.FAILED, T.UPSTREAM_FAILED, T.SKIPPED):
        for new in T:
            why = check_task_transition(current, new, by="scheduler")
            assert why is not None and str(current) in why


def test_durations_by_their_plain_names_in_seconds_or_timedelta():
    from datetime import timedelta

    config = TaskConfig(
        timeout=timedelta(minutes=5), retry_delay=30, max_retry_delay=timedelta(hours=1)
    )
    assert (config.timeout_s, config.retry_delay_s, config.max_retry_delay_s) == (300, 30, 3600)
    assert config.has_own_timeout and config == TaskConfig(
        timeout_s=300, retry_delay_s=30, max_retry_delay_s=3600
    )
    with pytest.raises(ValueError, match="give timeout or timeout_s, not both"):
        TaskConfig(timeout=5, timeout_s=6)
    with pytest.raises(TypeError, match="retry_delay must be seconds or a timedelta"):
        TaskConfig(retry_delay="soon")
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        TaskConfig(timeout=timedelta(0))


def test_retry_delay_backoff_and_cap():
    constant = TaskConfig(retries=3, retry_delay_s=2)
    assert [constant.retry_delay_for(r) for r in range(3)] == [2, 2, 2]
    doubling = TaskConfig(retries=5, retry_delay_s=1, retry_backoff=2, max_retry_delay_s=5)
    assert [doubling.retry_delay_for(r) for r in range(5)] == [1, 2, 4, 5, 5]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"retry_backoff": 0.5}, "retry_backoff"),
        ({"max_retry_delay_s": -1}, "max_retry_delay_s"),
        ({"isolation": "vm"}, "isolation"),
        ({"timeout_s": 0}, "timeout_s"),
    ],
)
def test_bad_task_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"TaskConfig.{field}"):
        TaskConfig(**kwargs)


def test_isolation_auto_uses_a_process_only_for_a_chosen_timeout():
    @ppacer.task
    def sync_task(ctx: ppacer.TaskContext) -> None:
        return None

    @ppacer.task
    async def async_task(ctx: ppacer.TaskContext) -> None:
        return None

    assert TaskConfig().timeout_s == 600
    assert not TaskConfig().runs_in_process(sync_task)
    assert TaskConfig(timeout_s=5).runs_in_process(sync_task)
    assert not TaskConfig(timeout_s=5).runs_in_process(async_task)
    assert TaskConfig(isolation="process").runs_in_process(async_task)
    assert not TaskConfig(timeout_s=5, isolation="thread").runs_in_process(sync_task)


def test_run_timeout_must_be_positive():
    with pytest.raises(ppacer.errors.DagValidationError, match="run_timeout_s"):
        ppacer.Dag(
            "d", root=ppacer.Node(ppacer.task(lambda c: None, id="t")), run_timeout_s=0
        ).done()


def test_leases_expire_renew_up_to_their_deadline_and_release():
    table = LeaseTable()
    a = table.grant(("d", "ts", "a", 0), "x", now=0.0, ttl_s=1.0, deadline=2.5)
    b = table.grant(("d", "ts", "b", 0), "x", now=0.0, ttl_s=1.0, deadline=100.0)
    assert table.next_expiry() == 1.0
    assert table.renew(a.token, now=0.9, ttl_s=1.0)
    assert table.pop_expired(1.0) == [b]
    assert table.renew(a.token, now=1.8, ttl_s=1.0)  # capped at the deadline, 2.5
    assert table.pop_expired(2.4) == []
    assert table.pop_expired(2.5) == [a]
    assert not table.renew(a.token, now=2.6, ttl_s=1.0)
    c = table.grant(("d", "ts", "c", 0), "y", now=0.0, ttl_s=1.0, deadline=9.0)
    assert table.release(("d", "ts", "c", 0)) is c
    assert table.pop_expired(10.0) == [] and len(table) == 0


def test_message_templates_fill_fields_and_missing_ones_render_as_dash():
    message = Message("task_failed", "etl", "2026-01-01T00:00:00Z", "load", 2, "ValueError: x")
    assert message.render("{title}: {error} [{retry}] {nope}") == (
        "DAG 'etl' task 'load': task failed: ValueError: x [2] -"
    )
    run = Message("dag_run_failed", "etl", "2026-01-01T00:00:00Z")
    assert "Task: - (retry -)" in run.render()
