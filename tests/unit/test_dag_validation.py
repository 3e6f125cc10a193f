"""DAG validation: ``Dag.done()`` and ``Registry.add`` reject invalid DAGs, naming DAG and task."""

from __future__ import annotations

import pytest

import ppacer
from ppacer.errors import DagValidationError, DuplicateDagError, PpacerError


class Noop(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> None:
        return None


def node(task_id: str) -> ppacer.Node:
    return ppacer.Node(Noop(task_id))


def validation_error(dag: ppacer.Dag) -> DagValidationError:
    with pytest.raises(DagValidationError) as info:
        dag.done()
    return info.value


def test_dag_validation_error_is_a_value_error_and_a_ppacer_error():
    assert issubclass(DagValidationError, ValueError)
    assert issubclass(DagValidationError, PpacerError)
    assert issubclass(DuplicateDagError, ValueError)
    assert issubclass(DuplicateDagError, PpacerError)


def test_two_task_cycle_is_rejected_naming_dag_and_task():
    a, b = node("a"), node("b")
    a.next(b).next(a)
    err = validation_error(ppacer.Dag("cyclic").add_root(a))
    assert err.dag_id == "cyclic"
    assert err.task_id == "a"
    assert "'cyclic'" in str(err)
    assert "'a'" in str(err)
    assert "cycle" in str(err)
    assert "a -> b -> a" in str(err)


def test_self_loop_is_rejected_naming_dag_and_task():
    a = node("a")
    a.next(a)
    err = validation_error(ppacer.Dag("selfish").add_root(a))
    assert (err.dag_id, err.task_id) == ("selfish", "a")
    assert "'selfish'" in str(err)
    assert "a -> a" in str(err)


def test_cycle_below_the_root_is_rejected_naming_the_task_that_closes_it():
    a, b, c = node("a"), node("b"), node("c")
    a.next(b).next(c).next(b)
    err = validation_error(ppacer.Dag("deep_cycle").add_root(a))
    assert (err.dag_id, err.task_id) == ("deep_cycle", "b")
    assert "b -> c -> b" in str(err)
    assert "'deep_cycle'" in str(err)


def test_cycle_is_rejected_by_registry_add_too():
    a, b = node("a"), node("b")
    a.next(b).next(a)
    registry = ppacer.Registry()
    with pytest.raises(DagValidationError) as info:
        registry.add(ppacer.Dag("cyclic").add_root(a))
    assert info.value.dag_id == "cyclic"
    assert "cyclic" not in registry


def test_duplicate_task_id_from_two_different_nodes_is_rejected_naming_dag_and_task():
    root = node("root")
    root.next(node("x"))
    root.next(node("x"))
    err = validation_error(ppacer.Dag("dupes").add_root(root))
    assert (err.dag_id, err.task_id) == ("dupes", "x")
    assert "'dupes'" in str(err)
    assert "'x'" in str(err)
    assert "duplicate" in str(err)


def test_duplicate_task_id_deeper_in_the_graph_is_rejected():
    root = node("root")
    root.next(node("a")).next(node("shared"))
    root.next(node("b")).next(node("shared"))
    err = validation_error(ppacer.Dag("dupes_deep").add_root(root))
    assert (err.dag_id, err.task_id) == ("dupes_deep", "shared")


def test_task_with_the_same_id_as_an_ancestor_is_a_duplicate_not_a_cycle():
    root = node("a")
    root.next(node("b")).next(node("a"))
    err = validation_error(ppacer.Dag("dupe_of_root").add_root(root))
    assert (err.dag_id, err.task_id) == ("dupe_of_root", "a")
    assert "duplicate" in str(err)


def test_same_task_object_added_twice_by_value_makes_two_nodes_and_is_a_duplicate():
    root = node("root")
    shared = Noop("shared")
    root.next(node("a")).next(shared)
    root.next(node("b")).next(shared)
    err = validation_error(ppacer.Dag("two_wrappers").add_root(root))
    assert err.task_id == "shared"


def test_duplicate_task_id_is_rejected_by_registry_add_too():
    root = node("root")
    root.next(node("x"))
    root.next(node("x"))
    with pytest.raises(DagValidationError) as info:
        ppacer.Registry().add(ppacer.Dag("dupes").add_root(root))
    assert (info.value.dag_id, info.value.task_id) == ("dupes", "x")


@pytest.mark.parametrize("dag_id", ["", "   "])
def test_empty_dag_id_is_rejected_naming_the_dag_id(dag_id):
    err = validation_error(ppacer.Dag(dag_id).add_root(node("a")))
    assert err.dag_id == dag_id
    assert f"DAG {dag_id!r}" in str(err)
    assert "non-empty" in str(err)


def test_empty_dag_id_is_rejected_by_registry_add():
    with pytest.raises(DagValidationError):
        ppacer.Registry().add(ppacer.Dag("").add_root(node("a")))


@pytest.mark.parametrize("task_id", ["", "  "])
def test_empty_task_id_is_rejected_naming_the_dag(task_id):
    root = node("root")
    root.next(node(task_id))
    err = validation_error(ppacer.Dag("blank_task").add_root(root))
    assert err.dag_id == "blank_task"
    assert "'blank_task'" in str(err)
    assert "task id must be a non-empty string" in str(err)
    # The task is named by its repr so that a blank id is visible in the message.
    assert err.task_id == repr(task_id)
    assert repr(task_id) in str(err)


def test_empty_root_task_id_is_rejected():
    err = validation_error(ppacer.Dag("blank_root").add_root(node("")))
    assert err.dag_id == "blank_root"
    assert "non-empty" in str(err)


def test_dag_without_a_root_is_rejected_naming_the_dag():
    err = validation_error(ppacer.Dag("lonely"))
    assert err.dag_id == "lonely"
    assert err.task_id is None
    assert "'lonely'" in str(err)
    assert "no tasks" in str(err)


def test_dag_without_a_root_is_rejected_by_registry_add_and_by_reading_tasks():
    with pytest.raises(DagValidationError, match="'lonely'"):
        ppacer.Registry().add(ppacer.Dag("lonely"))
    with pytest.raises(DagValidationError, match="'lonely'"):
        _ = ppacer.Dag("lonely").tasks


def test_registry_rejects_a_second_dag_with_the_same_id():
    first = ppacer.Dag("twin").add_root(node("a"))
    second = ppacer.Dag("twin").add_root(node("b"))
    registry = ppacer.Registry()
    assert registry.add(first) is first
    with pytest.raises(DuplicateDagError) as info:
        registry.add(second)
    assert info.value.dag_id == "twin"
    assert "'twin'" in str(info.value)
    assert len(registry) == 1
    assert registry["twin"] is first


def test_registry_constructor_rejects_duplicate_dag_ids():
    with pytest.raises(DuplicateDagError, match="'twin'"):
        ppacer.Registry(
            [ppacer.Dag("twin").add_root(node("a")), ppacer.Dag("twin").add_root(node("a"))]
        )


def test_registry_add_rejects_something_that_is_not_a_dag():
    with pytest.raises(TypeError):
        ppacer.Registry().add("not a dag")  # type: ignore[arg-type]


def test_same_node_reachable_by_two_paths_is_a_valid_diamond():
    root, left, right, merge = node("root"), node("left"), node("right"), node("merge")
    root.next(left).next(merge)
    root.next(right).next(merge)
    dag = ppacer.Dag("diamond").add_root(root).done()
    assert set(dag.tasks) == {"root", "left", "right", "merge"}
    assert set(dag.tasks["merge"].parents) == {"left", "right"}
    registry = ppacer.Registry([dag])
    assert registry["diamond"] is dag


def test_done_returns_the_dag_for_chaining():
    dag = ppacer.Dag("chained").add_root(node("a"))
    assert dag.done() is dag
