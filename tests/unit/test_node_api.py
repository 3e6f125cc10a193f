"""The Node building API and the ``@ppacer.task`` decorator."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

import ppacer
from ppacer.dag.task import FunctionTask


class Noop(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> None:
        return None


def node(task_id: str) -> ppacer.Node:
    return ppacer.Node(Noop(task_id))


def context(task_id: str) -> ppacer.TaskContext:
    return ppacer.TaskContext(
        dag_id="dag",
        exec_ts=datetime(2024, 3, 11, 22, 50, 20, tzinfo=UTC),
        task_id=task_id,
        retry=0,
        logger=logging.LoggerAdapter(logging.getLogger("tests.unit.node_api"), {}),
    )


def test_next_returns_the_child_node_so_calls_chain():
    a, b, c = node("a"), node("b"), node("c")
    assert a.next(b) is b
    assert a.next(b).next(c) is c
    assert a.children == [b]
    assert b.children == [c]
    assert c.children == []


def test_next_with_a_task_wraps_it_in_a_new_node_with_the_given_config():
    a = node("a")
    config = ppacer.TaskConfig(retries=2, timeout_s=5.0)
    task_b = Noop("b")
    b = a.next(task_b, config)
    assert isinstance(b, ppacer.Node)
    assert b.task is task_b
    assert b.task_id == "b"
    assert b.config == config
    assert a.children == [b]


def test_next_with_a_task_and_no_config_uses_the_default_config():
    b = node("a").next(Noop("b"))
    assert b.config == ppacer.TaskConfig()


def test_next_with_the_same_node_twice_adds_it_once():
    a, b = node("a"), node("b")
    a.next(b)
    a.next(b)
    assert a.children == [b]


def test_next_task_wraps_the_task_in_a_new_node_and_returns_it():
    a = node("a")
    task_b = Noop("b")
    config = ppacer.TaskConfig(retries=1)
    b = a.next_task(task_b, config)
    assert isinstance(b, ppacer.Node)
    assert b.task is task_b
    assert b.config == config
    assert a.children == [b]
    c = b.next_task(Noop("c"))
    assert b.children == [c]
    dag = ppacer.Dag("via_next_task").add_root(a).done()
    assert dag.task_ids() == ["a", "b", "c"]


def test_next_async_and_merge_returns_the_merge_node_whose_parents_are_the_branches():
    a, b, c, d, e = (node(t) for t in "abcde")
    assert a.next_async_and_merge([b, c, d], e) is e
    assert a.children == [b, c, d]
    for branch in (b, c, d):
        assert branch.children == [e]
    dag = ppacer.Dag("fan").add_root(a).done()
    assert dag.tasks["e"].parents == ("b", "c", "d")
    assert dag.tasks["a"].children == ("b", "c", "d")


def test_next_async_and_merge_accepts_plain_tasks_and_wraps_the_merge_once():
    a = node("a")
    merged = a.next_async_and_merge([Noop("b"), Noop("c")], Noop("m"))
    assert isinstance(merged, ppacer.Node)
    assert merged.task_id == "m"
    assert [child.children[0] for child in a.children] == [merged, merged]
    dag = ppacer.Dag("fan_tasks").add_root(a).done()
    assert set(dag.tasks["m"].parents) == {"b", "c"}


def test_next_async_and_merge_result_chains_further():
    a = node("a")
    end = a.next_async_and_merge([node("b"), node("c")], node("m")).next(node("end"))
    dag = ppacer.Dag("fan_chain").add_root(a).done()
    assert end.task_id == "end"
    assert dag.tasks["end"].depth == 4


def test_node_rejects_an_object_that_is_not_a_task():
    with pytest.raises(TypeError, match="Task"):
        ppacer.Node(object())  # type: ignore[arg-type]


def test_node_task_id_is_the_task_id():
    assert node("load").task_id == "load"


def test_bare_task_decorator_uses_the_function_name_and_execute_calls_it():
    calls = []

    @ppacer.task
    def extract(ctx: ppacer.TaskContext) -> str:
        calls.append(ctx)
        return "extracted"

    assert isinstance(extract, FunctionTask)
    assert isinstance(extract, ppacer.Task)
    assert extract.id() == "extract"
    ctx = context("extract")
    assert extract.execute(ctx) == "extracted"
    assert calls == [ctx]


def test_task_decorator_with_id_uses_the_given_id_and_execute_calls_the_function():
    calls = []

    @ppacer.task(id="load_rows")
    def load(ctx: ppacer.TaskContext) -> int:
        calls.append(ctx.task_id)
        return 42

    assert isinstance(load, FunctionTask)
    assert load.id() == "load_rows"
    assert load.execute(context("load_rows")) == 42
    assert calls == ["load_rows"]


def test_task_decorator_called_without_arguments_uses_the_function_name():
    @ppacer.task()
    def transform(ctx: ppacer.TaskContext) -> None:
        return None

    assert transform.id() == "transform"


def test_decorated_task_errors_propagate_from_execute():
    @ppacer.task
    def broken(ctx: ppacer.TaskContext) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        broken.execute(context("broken"))


def test_decorated_tasks_build_a_dag():
    @ppacer.task
    def first(ctx: ppacer.TaskContext) -> None:
        return None

    @ppacer.task(id="second")
    def second_fn(ctx: ppacer.TaskContext) -> None:
        return None

    root = ppacer.Node(first)
    root.next(second_fn)
    dag = ppacer.Dag("decorated").add_root(root).done()
    assert dag.task_ids() == ["first", "second"]
    assert dag.tasks["second"].task is second_fn
