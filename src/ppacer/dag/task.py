"""Tasks: the unit of work in a DAG, its configuration and the context it runs in."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import textwrap
import weakref
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import InitVar, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, overload, runtime_checkable

__all__ = [
    "DEFAULT_TASK_CONFIG",
    "MAX_OUTPUT_BYTES",
    "BaseTask",
    "Branch",
    "FunctionTask",
    "Task",
    "TaskConfig",
    "TaskContext",
    "TaskLogger",
    "is_async_task",
    "task",
    "task_code_version",
    "task_logger",
    "task_source",
    "task_type_name",
]


@runtime_checkable
class Task(Protocol):
    """A unit of work: an id unique within its DAG and an ``execute`` method.

    ``execute`` returning normally means SUCCESS; raising means FAILED.
    """

    def id(self) -> str:
        """Return the task's id, unique within its DAG."""
        ...

    def execute(self, ctx: TaskContext) -> object:
        """Do the work of one attempt of this task."""
        ...


class BaseTask:
    """Convenience base class: keeps the id; subclasses implement ``execute``."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id

    def id(self) -> str:
        """Return the task's id."""
        return self.task_id

    def execute(self, ctx: TaskContext) -> object:
        """Do the task's work; subclasses override it."""
        raise NotImplementedError(f"{type(self).__name__}.execute is not implemented")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.task_id!r})"


class FunctionTask:
    """A task made from a plain function ``fn(ctx)`` by the :func:`task` decorator."""

    def __init__(self, fn: Callable[[TaskContext], object], task_id: str | None = None) -> None:
        self.fn = fn
        self.task_id = task_id if task_id is not None else fn.__name__

    def id(self) -> str:
        """Return the task's id (the function's name unless given)."""
        return self.task_id

    def execute(self, ctx: TaskContext) -> object:
        """Call the wrapped function with the context."""
        return self.fn(ctx)

    def __repr__(self) -> str:
        return f"FunctionTask({self.task_id!r})"


@overload
def task(fn: Callable[[TaskContext], object], /, *, id: str | None = None) -> FunctionTask: ...
@overload
def task(*, id: str | None = None) -> Callable[[Callable[[TaskContext], object]], FunctionTask]: ...
def task(
    fn: Callable[[TaskContext], object] | None = None, /, *, id: str | None = None
) -> FunctionTask | Callable[[Callable[[TaskContext], object]], FunctionTask]:
    """Turn a function ``fn(ctx)`` into a task; its id is the function name or ``id``.

    Use as ``@task`` or ``@task(id="load")``.
    """
    if fn is not None:
        return FunctionTask(fn, id)

    def wrap(inner: Callable[[TaskContext], object]) -> FunctionTask:
        return FunctionTask(inner, id)

    return wrap


def is_async_task(t: Task) -> bool:
    """True when the task's ``execute`` (or wrapped function) is ``async def``."""
    target = t.fn if isinstance(t, FunctionTask) else t.execute
    return inspect.iscoroutinefunction(target)


def task_type_name(t: Task) -> str:
    """Return the name stored in ``dagtasks.TaskTypeName``: the class, or the function."""
    if isinstance(t, FunctionTask):
        return getattr(t.fn, "__qualname__", t.task_id)
    return type(t).__name__


def task_source(t: Task) -> str:
    """Return the source of the task's ``execute`` (or wrapped function).

    Source that cannot be read (defined in a REPL, a C extension, ...) gives a
    clear placeholder instead of an error.
    """
    target: Any = t.fn if isinstance(t, FunctionTask) else type(t).execute
    try:
        return _source_cache[target]
    except (KeyError, TypeError):
        pass
    try:
        source = textwrap.dedent(inspect.getsource(target))
    except (OSError, TypeError) as exc:
        source = f"<source of {task_type_name(t)} not available: {exc}>"
    with contextlib.suppress(TypeError):  # not weak-referenceable: just don't cache
        _source_cache[target] = source
    return source


def task_code_version(source: str, task_version: str | None, dag_version: str | None) -> str:
    """The identity of a task's code: what an executor must have to run an attempt of it.

    A hash of the source of ``execute`` (or the wrapped function) and of the
    explicit versions of the task and its DAG, if given: only what those cover
    counts, so a change in a helper module needs a new explicit version.
    """
    text = f"{source}\0{task_version or ''}\0{dag_version or ''}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# Sources by function object: many tasks share one class, and getsource is slow.
_source_cache: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


class _DefaultTimeout(float):
    """The default timeout (600 s, the original's): marks a timeout nobody chose.

    A task with a timeout of its own runs in a child process that is killed
    when it expires; the default one is enforced without isolation.
    """

    __slots__ = ()


#: Largest JSON value (UTF-8 bytes) a task may return for its downstream tasks.
MAX_OUTPUT_BYTES = 64 * 1024

_ISOLATIONS = ("auto", "thread", "process")


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskConfig:
    """How a task runs; stored as JSON in ``dagtasks.TaskConfig``.

    A DAG's ``default_config`` applies to its nodes that have no config of their own.
    """

    # Seconds an attempt may run. Past it the attempt is FAILED with a timeout
    # reason (and retried per ``retries``). A task given a timeout of its own
    # runs in a child process that is killed when it expires (see ``isolation``).
    timeout_s: float = _DefaultTimeout(600.0)
    # How many times a failed task is tried again (0: no retries).
    retries: int = 0
    # Seconds to wait before the first retry.
    retry_delay_s: float = 0.0
    # Each further retry waits this many times longer (1.0: constant; 2.0: doubling).
    retry_backoff: float = 1.0
    # Upper bound of the delay between attempts, in seconds (None: unbounded).
    max_retry_delay_s: float | None = None
    # Ready tasks with a higher priority are handed to executors first.
    priority: int = 0
    # Where the executor runs an attempt: "thread", "process" (a child process,
    # killed at the timeout or when the executor stops) or "auto" (a process
    # when the task has a timeout of its own, a thread otherwise; async tasks
    # run on the executor's event loop and are cancelled at their timeout).
    isolation: str = "auto"
    # Notify on each failed attempt that will be retried.
    send_alert_on_retry: bool = False
    # Notify when the task fails for good.
    send_alert_on_failure: bool = True
    # Which executors run it: only those serving this queue (``ppacer executor
    # --queue gpu``); executors that name no queue serve "default".
    queue: str = "default"
    # An explicit version of the task's code, for changes the source hash of
    # ``execute`` does not see (helper modules, data files, libraries). Part of
    # the task's code version (see ``task_code_version``).
    version: str | None = None
    # The same durations as seconds or a ``timedelta``, by their plain names:
    # ``TaskConfig(timeout=timedelta(minutes=5), retry_delay=30)``.
    timeout: InitVar[float | timedelta | None] = None
    retry_delay: InitVar[float | timedelta | None] = None
    max_retry_delay: InitVar[float | timedelta | None] = None

    def __post_init__(
        self,
        timeout: float | timedelta | None,
        retry_delay: float | timedelta | None,
        max_retry_delay: float | timedelta | None,
    ) -> None:
        for alias, value in (
            ("timeout", timeout),
            ("retry_delay", retry_delay),
            ("max_retry_delay", max_retry_delay),
        ):
            if value is None:
                continue
            seconds = value.total_seconds() if isinstance(value, timedelta) else value
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise TypeError(f"TaskConfig.{alias} must be seconds or a timedelta, got {value!r}")
            field_name = f"{alias}_s"
            current = getattr(self, field_name)
            default = TaskConfig.__dataclass_fields__[field_name].default
            if current is not default and current != default:
                raise ValueError(f"TaskConfig: give {alias} or {field_name}, not both")
            object.__setattr__(self, field_name, float(seconds))
        if not self.timeout_s > 0:
            raise ValueError(f"TaskConfig.timeout_s must be positive, got {self.timeout_s}")
        if self.retries < 0 or int(self.retries) != self.retries:
            raise ValueError(f"TaskConfig.retries must be a whole number >= 0, got {self.retries}")
        if self.retry_delay_s < 0:
            raise ValueError(f"TaskConfig.retry_delay_s must be >= 0, got {self.retry_delay_s}")
        if self.retry_backoff < 1:
            raise ValueError(f"TaskConfig.retry_backoff must be >= 1, got {self.retry_backoff}")
        if self.max_retry_delay_s is not None and self.max_retry_delay_s < 0:
            raise ValueError(
                f"TaskConfig.max_retry_delay_s must be >= 0, got {self.max_retry_delay_s}"
            )
        if not isinstance(self.queue, str) or not self.queue.strip():
            raise ValueError(f"TaskConfig.queue must be a non-empty name, got {self.queue!r}")
        if self.version is not None and (not isinstance(self.version, str) or not self.version):
            raise ValueError(f"TaskConfig.version must be a non-empty string, got {self.version!r}")
        if self.isolation not in _ISOLATIONS:
            raise ValueError(
                f"TaskConfig.isolation must be one of {', '.join(_ISOLATIONS)}, "
                f"got {self.isolation!r}"
            )

    @property
    def has_own_timeout(self) -> bool:
        """True when the timeout was chosen (not the 600 s default)."""
        return not isinstance(self.timeout_s, _DefaultTimeout)

    def runs_in_process(self, task: Task) -> bool:
        """Whether the executor runs attempts of ``task`` in a child process.

        "auto" picks a process for a task with a timeout of its own, except an
        ``async def execute``, which is cancelled on the event loop instead.
        """
        if self.isolation == "auto":
            return self.has_own_timeout and not is_async_task(task)
        return self.isolation == "process"

    def retry_delay_for(self, retry: int) -> float:
        """Seconds to wait before attempt ``retry + 1`` after attempt ``retry`` failed."""
        delay = self.retry_delay_s * self.retry_backoff ** max(0, retry)
        if self.max_retry_delay_s is not None:
            delay = min(delay, self.max_retry_delay_s)
        return delay

    def to_json(self) -> str:
        """Return the JSON stored in the database (the original's field names, then ours).

        ``queue`` and ``version`` appear only when set, so DAGs that use neither
        keep the config (and task hashes) they had.
        """
        data: dict[str, Any] = {
            "timeoutSeconds": float(self.timeout_s),
            "retries": self.retries,
            "retriesDelaySeconds": self.retry_delay_s,
            "retryBackoff": self.retry_backoff,
            "maxRetryDelaySeconds": self.max_retry_delay_s,
            "priority": self.priority,
            "isolation": self.isolation,
            "sendAlertOnRetry": self.send_alert_on_retry,
            "sendAlertOnFailure": self.send_alert_on_failure,
        }
        if self.queue != "default":
            data["queue"] = self.queue
        if self.version is not None:
            data["version"] = self.version
        return json.dumps(data, sort_keys=True)


DEFAULT_TASK_CONFIG = TaskConfig()


@dataclass(frozen=True, slots=True, init=False)
class Branch:
    """Return it from ``execute`` to run only some children; the others are SKIPPED.

    ``Branch("load")`` follows child ``load``; ``Branch()`` skips every child
    (a short circuit). Skipped tasks count as finished for trigger rules, so a
    join with ``all_done`` or ``none_failed`` still runs. ``value`` is the
    task's output, as if it had been returned.
    """

    follow: tuple[str, ...]
    value: object

    def __init__(self, *follow: str, value: object = None) -> None:
        object.__setattr__(self, "follow", tuple(follow))
        object.__setattr__(self, "value", value)


class TaskLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger for one task attempt: each record carries the attempt's identity.

    Keyword ``extra`` values given to a call are kept as the record's attributes
    (stored as JSON next to the message in the logs DB).
    """

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        """Merge the attempt's identity with the call's own ``extra`` attributes."""
        attrs = dict(kwargs.get("extra") or {})
        kwargs["extra"] = {**(self.extra or {}), "ppacer_attrs": attrs}
        return msg, kwargs


def task_logger(
    base: logging.Logger,
    dag_id: str,
    exec_ts: str,
    task_id: str,
    retry: int,
    run_id: int | None = None,
) -> logging.LoggerAdapter[logging.Logger]:
    """Return the logger a task attempt writes to (records carry the attempt's identity)."""
    return TaskLogger(
        base,
        {
            "ppacer_dag_id": dag_id,
            "ppacer_exec_ts": exec_ts,
            "ppacer_task_id": task_id,
            "ppacer_retry": retry,
            "ppacer_run_id": run_id,
        },
    )


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What a running task knows: its DAG run, its id and attempt, parameters and a logger."""

    dag_id: str
    exec_ts: datetime
    task_id: str
    retry: int
    logger: logging.LoggerAdapter[logging.Logger]
    run_id: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    # Values returned by this task's parents, by parent task id (JSON values).
    upstream: Mapping[str, Any] = field(default_factory=dict)

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """Alias of ``logger``."""
        return self.logger

    def input(self, task_id: str) -> Any:
        """The value parent ``task_id`` returned (None when it returned nothing).

        Raises ``KeyError`` naming the task when ``task_id`` is not a parent.
        """
        if task_id not in self.upstream:
            raise KeyError(
                f"task {self.task_id!r} has no parent {task_id!r} with an output "
                f"(parents with outputs: {sorted(self.upstream)})"
            )
        return self.upstream[task_id]
