"""DAGs and the registry (nodes: :mod:`ppacer.dag.node`; graph checks: :mod:`ppacer.dag.graph`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from ppacer.dag.cron import CronSchedule
from ppacer.dag.graph import compile_graph
from ppacer.dag.node import Node, TaskInfo
from ppacer.dag.schedule import Schedule
from ppacer.dag.task import (
    DEFAULT_TASK_CONFIG,
    Task,
    TaskConfig,
    task_source,
    task_type_name,
)
from ppacer.errors import DagValidationError, DuplicateDagError, PpacerError

__all__ = ["Dag", "DagAttributes", "Node", "Registry", "TaskInfo", "collecting_errors"]

# While set (by collecting_errors), invalid DAGs are reported to it instead of raising.
_ON_INVALID: ContextVar[Callable[[PpacerError], None] | None] = ContextVar(
    "ppacer_on_invalid_dag", default=None
)


@contextlib.contextmanager
def collecting_errors(on_error: Callable[[PpacerError], None]) -> Iterator[None]:
    """While active, building or registering an invalid DAG does not raise.

    Its error goes to ``on_error`` and the DAG is left out of registries, so
    ``ppacer validate`` reports every invalid DAG of a file, not only the first.
    """
    token = _ON_INVALID.set(on_error)
    try:
        yield
    finally:
        _ON_INVALID.reset(token)


def _collected(dag: Dag | None, exc: PpacerError) -> bool:
    """Report ``exc`` if errors are being collected (marking ``dag`` invalid); else False."""
    on_error = _ON_INVALID.get()
    if on_error is None:
        return False
    on_error(exc)
    if dag is not None:
        dag.is_invalid = True
    return True


@dataclass(frozen=True, slots=True)
class DagAttributes:
    """DAG-level settings stored in ``dags.Attributes``."""

    # Run every schedule point missed while the scheduler was down (in order).
    catch_up: bool = False
    # Free-form labels for grouping DAGs in lists and the UI.
    tags: tuple[str, ...] = ()
    # Runs of this DAG active at once; more wait, in order (never dropped).
    max_active_runs: int = 16
    # Seconds a run may take from its creation; past it, its unfinished tasks
    # are failed, the run is FAILED and a notification is sent (None: no limit).
    run_timeout_s: float | None = None

    def to_json(self) -> str:
        """Return the JSON stored in the database."""
        data: dict[str, object] = {
            "catchUp": self.catch_up,
            "tags": list(self.tags),
            "maxActiveRuns": self.max_active_runs,
        }
        if self.run_timeout_s is not None:
            data["runTimeoutSeconds"] = self.run_timeout_s
        return json.dumps(data, sort_keys=True)


class Dag:
    """A DAG: an id, an optional schedule, attributes and one root node.

    Build it with chained calls and finish with :meth:`done`, which validates
    it (cycles, duplicate or empty task ids, no tasks) and computes each task's
    position; an invalid DAG raises :class:`DagValidationError` there, naming
    the DAG and the task.
    """

    def __init__(
        self,
        dag_id: str,
        *,
        schedule: Schedule | str | None = None,
        root: Node | Task | None = None,
        catch_up: bool | None = None,
        catchup: bool | None = None,
        tags: Iterable[str] = (),
        max_active_runs: int = 16,
        description: str = "",
        version: str | None = None,
        tz: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        default_config: TaskConfig | None = None,
        run_timeout_s: float | None = None,
    ) -> None:
        self.id = dag_id
        self.schedule: Schedule | None = None
        # Found invalid while errors were collected (see collecting_errors).
        self.is_invalid = False
        if schedule is not None:
            self.add_schedule(schedule, tz=tz, start=start, end=end)
        self.root = root if root is None or isinstance(root, Node) else Node(root)
        self.attributes = DagAttributes(
            catch_up=bool(catch_up if catch_up is not None else catchup),
            tags=tuple(tags),
            max_active_runs=max_active_runs,
            run_timeout_s=run_timeout_s,
        )
        # Config of the nodes that have none of their own (timeouts, retries, isolation...).
        self.default_config = default_config if default_config is not None else DEFAULT_TASK_CONFIG
        self.description = description
        # An explicit version of the DAG's code: part of every task's code version.
        self.version = version
        self._tasks: dict[str, TaskInfo] | None = None

    def add_schedule(
        self,
        schedule: Schedule | str,
        *,
        tz: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Dag:
        """Set the schedule (without one, the DAG runs only when triggered).

        A string is a cron expression (see :class:`~ppacer.dag.cron.CronSchedule`)
        evaluated in ``tz`` from ``start`` to ``end``; a bad one raises
        :class:`DagValidationError` naming this DAG.
        """
        try:
            self.schedule = self._schedule_of(schedule, tz, start, end)
        except DagValidationError as exc:
            if not _collected(self, exc):
                raise
            return self
        self._tasks = None
        return self

    def _schedule_of(
        self,
        schedule: Schedule | str,
        tz: str | None,
        start: datetime | None,
        end: datetime | None,
    ) -> Schedule:
        if isinstance(schedule, str):
            try:
                schedule = CronSchedule(schedule, tz=tz, start=start, end=end)
            except ValueError as exc:
                raise DagValidationError(self.id, f"schedule: {exc}") from None
        elif tz is not None or start is not None or end is not None:
            raise DagValidationError(
                self.id,
                "schedule: tz, start and end go with a cron string; set them on the schedule",
            )
        if not isinstance(schedule, Schedule):
            raise DagValidationError(self.id, f"schedule must implement Schedule, got {schedule!r}")
        return schedule

    def add_root(self, root: Node | Task) -> Dag:
        """Set the root node (a task is wrapped in a node)."""
        self.root = root if isinstance(root, Node) else Node(root)
        self._tasks = None
        return self

    def add_attributes(
        self,
        *,
        catch_up: bool | None = None,
        catchup: bool | None = None,
        tags: Iterable[str] = (),
        max_active_runs: int = 16,
        run_timeout_s: float | None = None,
        default_config: TaskConfig | None = None,
    ) -> Dag:
        """Set ``catch_up`` (alias ``catchup``) after downtime, ``tags``, ``max_active_runs``,
        the run deadline ``run_timeout_s`` and the tasks' ``default_config``."""
        self.attributes = DagAttributes(
            catch_up=bool(catch_up if catch_up is not None else catchup),
            tags=tuple(tags),
            max_active_runs=max_active_runs,
            run_timeout_s=run_timeout_s,
        )
        if default_config is not None:
            self.default_config = default_config
        self._tasks = None
        return self

    def done(self) -> Dag:
        """Validate the DAG and freeze its task graph; return the DAG."""
        try:
            self._tasks = _compile(self)
        except DagValidationError as exc:
            if not _collected(self, exc):
                raise
        return self

    @property
    def tasks(self) -> Mapping[str, TaskInfo]:
        """The DAG's tasks by id (validated on first use)."""
        if self._tasks is None:
            self.done()
        assert self._tasks is not None
        return self._tasks

    def task_ids(self) -> list[str]:
        """Task ids in a stable order: by depth, then width."""
        return list(self.tasks)

    def descendants(self, task_id: str) -> list[str]:
        """Every task downstream of ``task_id`` (not itself), in graph order."""
        tasks = self.tasks
        seen: set[str] = set()
        stack = list(tasks[task_id].children)
        while stack:
            tid = stack.pop()
            if tid not in seen:
                seen.add(tid)
                stack.extend(tasks[tid].children)
        return [tid for tid in tasks if tid in seen]

    def start_ts(self) -> datetime | None:
        """The schedule's start, or None for a manual-only DAG."""
        return self.schedule.start() if self.schedule is not None else None

    def hash_meta(self) -> str:
        """Hash of the DAG's metadata (id, schedule, start, attributes)."""
        start = self.start_ts()
        parts = [self.id, repr(self.schedule), start.isoformat() if start else ""]
        parts.append(self.attributes.to_json())
        return _sha256("\x1f".join(parts))

    def hash_tasks(self) -> str:
        """Hash of the tasks: ids, types, configs, sources and edges."""
        digest = hashlib.sha256()
        for info in self.tasks.values():
            digest.update(
                "\x1f".join(
                    [
                        info.task_id,
                        task_type_name(info.task),
                        info.config.to_json(),
                        info.trigger_rule.value,
                        _sha256(task_source(info.task)),
                        ",".join(info.children),
                    ]
                ).encode()
            )
            digest.update(b"\x1e")
        if self.version is not None:  # only when set: unversioned DAGs keep their hashes
            digest.update(f"version={self.version}".encode())
        return digest.hexdigest()

    def __repr__(self) -> str:
        return f"Dag({self.id!r}, schedule={self.schedule!s}, tasks={len(self.tasks)})"


def _compile(dag: Dag) -> dict[str, TaskInfo]:
    """Validate ``dag`` and compute parents, children and positions of its tasks."""
    if not isinstance(dag.id, str) or not dag.id.strip():
        raise DagValidationError(str(dag.id), "DAG id must be a non-empty string")
    if dag.root is None:
        raise DagValidationError(dag.id, "DAG has no tasks: add a root node with add_root()")
    if dag.attributes.max_active_runs < 1:
        raise DagValidationError(
            dag.id, f"max_active_runs must be >= 1, got {dag.attributes.max_active_runs}"
        )
    timeout = dag.attributes.run_timeout_s
    if timeout is not None and not timeout > 0:
        raise DagValidationError(dag.id, f"run_timeout_s must be positive, got {timeout}")
    if not isinstance(dag.default_config, TaskConfig):
        raise DagValidationError(
            dag.id, f"default_config must be a TaskConfig, got {dag.default_config!r}"
        )
    return compile_graph(dag.id, dag.root, dag.default_config, dag.version)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Registry(Mapping[str, Dag]):
    """The DAGs a scheduler and its executors know, by id; a duplicate id is an error."""

    def __init__(self, dags: Iterable[Dag] = ()) -> None:
        self._dags: dict[str, Dag] = {}
        for dag in dags:
            self.add(dag)

    def add(self, dag: Dag) -> Dag:
        """Validate ``dag`` and add it; raise :class:`DuplicateDagError` if its id is taken."""
        if not isinstance(dag, Dag):
            raise TypeError(f"Registry.add needs a Dag, got {type(dag).__name__}")
        if not dag.is_invalid:
            dag.done()
        if dag.is_invalid:
            return dag  # its error was collected (see collecting_errors): left out
        if dag.id in self._dags and not _collected(None, DuplicateDagError(dag.id)):
            raise DuplicateDagError(dag.id)
        self._dags.setdefault(dag.id, dag)
        return dag

    def __getitem__(self, dag_id: str) -> Dag:
        return self._dags[dag_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dags)

    def __len__(self) -> int:
        return len(self._dags)

    def __repr__(self) -> str:
        return f"Registry({list(self._dags)})"

    def fingerprint(self) -> str:
        """Hash of every DAG's metadata and tasks: equal registries, equal fingerprints.

        Schedulers of one database compare it: a standby with other DAG code does
        not take over (see :mod:`ppacer.scheduler.leadership`).
        """
        parts = [f"{d.id}:{d.hash_meta()}:{d.hash_tasks()}" for d in self._dags.values()]
        return _sha256("\x1e".join(sorted(parts)))[:16]
