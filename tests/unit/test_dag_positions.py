"""Graph positions of tasks: depth (longest path from the root) and width within a level."""

from __future__ import annotations

import pytest

import ppacer


class Noop(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> None:
        return None


def node(task_id: str) -> ppacer.Node:
    return ppacer.Node(Noop(task_id))


def positions(dag: ppacer.Dag) -> dict[str, tuple[int, int]]:
    return {tid: (info.depth, info.width) for tid, info in dag.tasks.items()}


def test_root_alone_is_at_depth_one_width_one():
    dag = ppacer.Dag("single").add_root(node("only")).done()
    assert positions(dag) == {"only": (1, 1)}
    info = dag.tasks["only"]
    assert info.parents == ()
    assert info.children == ()


@pytest.mark.parametrize("length", [2, 5, 50])
def test_chain_has_depths_one_to_n_and_width_one(length):
    ids = [f"t{i}" for i in range(1, length + 1)]
    root = node(ids[0])
    last = root
    for tid in ids[1:]:
        last = last.next(node(tid))
    dag = ppacer.Dag("chain").add_root(root).done()
    assert positions(dag) == {tid: (i, 1) for i, tid in enumerate(ids, start=1)}
    assert dag.task_ids() == ids


def test_long_chain_does_not_hit_the_recursion_limit():
    root = node("t0")
    last = root
    for i in range(1, 5000):
        last = last.next(node(f"t{i}"))
    dag = ppacer.Dag("long_chain").add_root(root).done()
    assert dag.tasks["t4999"].depth == 5000


def test_diamond_fan_out_gets_widths_one_two_three_and_merge_the_next_depth():
    root = node("1")
    root.next_async_and_merge([node("21"), node("22"), node("23")], node("3"))
    dag = ppacer.Dag("diamond").add_root(root).done()
    assert positions(dag) == {
        "1": (1, 1),
        "21": (2, 1),
        "22": (2, 2),
        "23": (2, 3),
        "3": (3, 1),
    }
    assert dag.task_ids() == ["1", "21", "22", "23", "3"]


def test_task_reachable_at_several_depths_sits_at_its_deepest():
    a, b, c = node("a"), node("b"), node("c")
    a.next(b).next(c)
    a.next(c)
    dag = ppacer.Dag("shortcut").add_root(a).done()
    assert positions(dag) == {"a": (1, 1), "b": (2, 1), "c": (3, 1)}
    assert set(dag.tasks["c"].parents) == {"a", "b"}


def test_task_reachable_at_several_depths_sits_at_its_deepest_when_shortcut_is_added_first():
    a, b, c = node("a"), node("b"), node("c")
    a.next(c)
    a.next(b).next(c)
    dag = ppacer.Dag("shortcut_first").add_root(a).done()
    assert dag.tasks["c"].depth == 3
    assert dag.tasks["b"].depth == 2
    assert positions(dag)["b"] == (2, 1)
    assert positions(dag)["c"] == (3, 1)


def test_long_and_short_paths_to_the_same_task_use_the_longest():
    a, e = node("a"), node("e")
    a.next(e)
    a.next(node("b")).next(node("c")).next(node("d")).next(e)
    dag = ppacer.Dag("longest").add_root(a).done()
    assert dag.tasks["e"].depth == 5
    assert [dag.tasks[t].depth for t in "abcd"] == [1, 2, 3, 4]


def test_widths_count_from_one_within_each_level_in_breadth_first_order():
    a, b, c = node("a"), node("b"), node("c")
    a.next(b)
    a.next(c)
    b.next(node("d"))
    b.next(node("e"))
    c.next(node("f"))
    dag = ppacer.Dag("tree").add_root(a).done()
    assert positions(dag) == {
        "a": (1, 1),
        "b": (2, 1),
        "c": (2, 2),
        "d": (3, 1),
        "e": (3, 2),
        "f": (3, 3),
    }


def test_every_level_has_contiguous_widths_starting_at_one():
    a = node("a")
    b, c = node("b"), node("c")
    a.next(b)
    a.next(c)
    d = node("d")
    b.next(d)
    c.next(d)
    c.next(node("x"))
    d.next(node("y"))
    a.next(node("z")).next(node("y2"))
    dag = ppacer.Dag("mixed").add_root(a).done()
    levels: dict[int, list[int]] = {}
    for info in dag.tasks.values():
        levels.setdefault(info.depth, []).append(info.width)
    for widths in levels.values():
        assert sorted(widths) == list(range(1, len(widths) + 1))
    assert dag.tasks["y"].depth == 4


def test_task_ids_are_ordered_by_depth_then_width():
    root = node("r")
    root.next(node("z")).next(node("end"))
    root.next(node("a"))
    dag = ppacer.Dag("ordered").add_root(root).done()
    assert dag.task_ids() == ["r", "z", "a", "end"]
    keys = [(info.depth, info.width) for info in dag.tasks.values()]
    assert keys == sorted(keys)


def test_children_and_parents_are_recorded_per_task():
    a, b, c = node("a"), node("b"), node("c")
    a.next(b).next(c)
    a.next(c)
    dag = ppacer.Dag("edges").add_root(a).done()
    assert dag.tasks["a"].children == ("b", "c")
    assert dag.tasks["b"].children == ("c",)
    assert dag.tasks["c"].children == ()
    assert dag.tasks["a"].parents == ()
    assert dag.descendants("a") == ["b", "c"]
    assert dag.descendants("b") == ["c"]
