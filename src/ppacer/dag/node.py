"""A node of a DAG: a task with its config and children, and what validation learns of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ppacer.dag.status import TriggerRule
from ppacer.dag.task import DEFAULT_TASK_CONFIG, Task, TaskConfig

__all__ = ["Node", "TaskInfo"]


class Node:
    """A task in a DAG, with its configuration and its children.

    ``a.next(b)`` makes ``b`` a child of ``a`` and returns ``b``, so chains read
    left to right: ``start.next(middle).next(finish)``. ``trigger_rule`` says
    when the task runs given how its parents ended (default: all succeeded).
    A node without a config takes its DAG's ``default_config``.
    """

    __slots__ = ("_added", "children", "own_config", "task", "trigger_rule")

    def __init__(
        self,
        task: Task,
        config: TaskConfig | None = None,
        *,
        trigger_rule: TriggerRule | str = TriggerRule.ALL_SUCCESS,
    ) -> None:
        if not isinstance(task, Task):
            raise TypeError(f"Node needs a Task (id() and execute(ctx)), got {type(task).__name__}")
        if config is not None and not isinstance(config, TaskConfig):
            raise TypeError(f"Node config must be a TaskConfig, got {type(config).__name__}")
        try:
            self.trigger_rule = TriggerRule(trigger_rule)
        except ValueError:
            rules = ", ".join(r.value for r in TriggerRule)
            raise ValueError(
                f"task {task.id()!r}: unknown trigger rule {trigger_rule!r} (one of {rules})"
            ) from None
        self.task = task
        self.own_config = config
        self.children: list[Node] = []
        # Ids of the children added by next() (see there).
        self._added: set[int] = set()

    @property
    def config(self) -> TaskConfig:
        """The node's own config, or the default one."""
        return self.own_config if self.own_config is not None else DEFAULT_TASK_CONFIG

    @property
    def task_id(self) -> str:
        """The id of this node's task."""
        return self.task.id()

    def next(
        self,
        child: Node | Task,
        config: TaskConfig | None = None,
        *,
        trigger_rule: TriggerRule | str = TriggerRule.ALL_SUCCESS,
    ) -> Node:
        """Add ``child`` (a node, or a task wrapped in a new node) after this one; return it."""
        node = child if isinstance(child, Node) else Node(child, config, trigger_rule=trigger_rule)
        # The set only proves absence (a root of 10,000 children is built in O(n)); when it
        # cannot (a node seen before, or a list changed by hand), the list is looked at.
        maybe_there = id(node) in self._added or len(self._added) != len(self.children)
        if not (maybe_there and any(c is node for c in self.children)):
            self.children.append(node)
            self._added.add(id(node))
        return node

    def next_task(
        self,
        task: Task,
        config: TaskConfig | None = None,
        *,
        trigger_rule: TriggerRule | str = TriggerRule.ALL_SUCCESS,
    ) -> Node:
        """Wrap ``task`` in a new node, add it after this one and return it."""
        return self.next(Node(task, config, trigger_rule=trigger_rule))

    def next_async_and_merge(self, branches: Sequence[Node | Task], merge: Node | Task) -> Node:
        """Fan out to ``branches`` (run in parallel) and join them all into ``merge``; return it."""
        merge_node = merge if isinstance(merge, Node) else Node(merge)
        for branch in branches:
            self.next(branch).next(merge_node)
        return merge_node

    def __repr__(self) -> str:
        return f"Node({self.task_id!r}, children={[c.task_id for c in self.children]})"


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A validated task of a DAG with everything the scheduler needs about it."""

    task_id: str
    node: Node
    parents: tuple[str, ...]
    children: tuple[str, ...]
    depth: int
    width: int
    # The node's own config, else the DAG's default_config, else the default.
    config: TaskConfig = DEFAULT_TASK_CONFIG
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    # What an executor must have to run it (see ppacer.dag.task.task_code_version).
    code_version: str = ""

    @property
    def task(self) -> Task:
        """The task object."""
        return self.node.task
