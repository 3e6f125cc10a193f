"""The executors' side of the wire, read by hand: no validation library on a hop's path.

Each type here mirrors one model of :mod:`ppacer.api.inputs`, :mod:`ppacer.api.params`
or :mod:`ppacer.api.schemas` (named in its docstring) and has two ways in:

- :meth:`WireInput.check` reads the common case, a valid request, by hand. It
  returns None whenever it is not sure the model would take the data as it is:
  a missing or mistyped field, a value out of range, a NUL character.
- :meth:`WireInput.from_valid` builds it from data the model already validated.

The server's adapter and the client try ``check`` first and otherwise let the
model decide (:func:`read`), so the model stays the one contract: it words every
error and documents the route, and a request the hand check does not take
costs only the time of loading the model. ``tests/unit/test_checked.py`` holds
each check to its model: whatever a check takes, the model takes, as the same
values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any, Protocol, TypeVar

from ppacer.api.models import PROTOCOL_VERSION, LogRecord, StatusReport, parse_exec_ts
from ppacer.dag.status import TaskStatus
from ppacer.errors import InvalidInputError

__all__ = [
    "Heartbeat",
    "LogRecordIn",
    "LogShipment",
    "PopBatchQuery",
    "PopQuery",
    "Registration",
    "ReportAndPopBody",
    "StatusUpdate",
    "StatusUpdates",
    "WireInput",
    "build",
    "read",
]

_W = TypeVar("_W", bound="WireInput")
_D = TypeVar("_D")


class WireInput(Protocol):
    """A wire type read by hand when sure, else from its model's validated data."""

    @classmethod
    def check(cls: type[_W], data: Mapping[str, Any]) -> _W | None:
        """The value, if ``data`` is certainly valid as it is; otherwise None."""

    @classmethod
    def from_valid(cls: type[_W], data: Mapping[str, Any]) -> _W:
        """The value from data its model validated (``model_dump()``)."""


def build(cls: type[_D], data: Mapping[str, Any]) -> _D:
    """A wire dataclass from JSON data whose keys are its fields' names (extra keys
    ignored; every field present)."""
    names: tuple[str, ...] = _field_names(cls)  # type: ignore[arg-type]
    return cls(*[data[name] for name in names])


@cache
def _field_names(cls: Any) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def read(wire: type[_W], data: Any, model: Callable[[], Any]) -> _W:
    """``data`` as ``wire``: checked by hand, else validated by the pydantic model class
    ``model()`` returns (imported only then; its ``ValidationError`` passes through)."""
    if isinstance(data, dict):
        found = wire.check(data)
        if found is not None:
            return found
    return wire.from_valid(model().model_validate(data).model_dump())


# ---------------------------------------------------------------- what a check accepts
# Each answers True only when the model's strict validation would keep the value as
# it is: the exact type, within its bounds, and (outside free text and JSON values)
# no NUL character, which the models refuse.


def _text(value: Any, min_length: int = 1, max_length: int | None = None) -> bool:
    return (
        type(value) is str
        and len(value) >= min_length
        and (max_length is None or len(value) <= max_length)
        and "\x00" not in value
    )


def _maybe_text(value: Any, max_length: int | None = None) -> bool:
    return value is None or _text(value, 0, max_length)


def _int(value: Any, ge: int, le: int | None = None) -> bool:
    return type(value) is int and value >= ge and (le is None or value <= le)


def _texts(value: Any, min_items: int = 0, max_items: int | None = None) -> bool:
    return (
        type(value) is list
        and len(value) >= min_items
        and (max_items is None or len(value) <= max_items)
        and all(_text(item, 0) for item in value)
    )


def _text_map(value: Any) -> bool:
    """``dict[str, str]``, no NUL in keys or values."""
    return type(value) is dict and all("\x00" not in k and _text(v, 0) for k, v in value.items())


def _json_object(value: Any) -> bool:
    """``dict[str, Any]`` holding JSON (any character allowed)."""
    return type(value) is dict


def _json_value(value: Any) -> bool:
    """Any JSON value; NUL is allowed inside, not in a bare string (the models refuse it)."""
    return not (type(value) is str and "\x00" in value)


def _nested_texts(value: Any, leaf: Any) -> bool:
    """``dict[str, dict[str, leaf]]`` (a JSON value: NUL allowed), leaf a check."""
    return type(value) is dict and all(
        type(inner) is dict and all(leaf(v) for v in inner.values()) for inner in value.values()
    )


def _is_str(value: Any) -> bool:
    return type(value) is str


def _is_str_list(value: Any) -> bool:
    return type(value) is list and all(type(v) is str for v in value)


def _absent_or(data: Mapping[str, Any], key: str, check: Any) -> bool:
    return key not in data or check(data[key])


# ---------------------------------------------------------------- the executors' requests


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """One report on a task attempt, as :class:`ppacer.api.inputs.TaskStatusUpdate`."""

    dagId: str
    execTs: str
    taskId: str
    retry: int
    status: str
    taskError: str | None = None
    leaseToken: str | None = None
    output: Any = None
    branch: list[str] | None = None

    @classmethod
    def check(cls, data: Mapping[str, Any]) -> StatusUpdate | None:
        get = data.get
        branch = get("branch")
        task_error = get("taskError")
        if (
            _text(get("dagId"))
            and _text(get("execTs"))
            and _text(get("taskId"))
            and _int(get("retry"), 0)
            and _text(get("status"))
            and _maybe_text(task_error)  # free text: NUL becomes U+FFFD, by the model
            and _maybe_text(get("leaseToken"))
            and (branch is None or _texts(branch))
            and _json_value(get("output"))
        ):
            return build(cls, {**_UPDATE_DEFAULTS, **data})
        return None

    @classmethod
    def from_valid(cls, data: Mapping[str, Any]) -> StatusUpdate:
        return build(cls, data)

    def to_report(self) -> StatusReport:
        """The report this update carries (timestamp normalised; a bad one or status is a 400)."""
        try:
            status = TaskStatus(self.status)
        except ValueError:
            raise InvalidInputError(f"status: unknown task status {self.status!r}") from None
        return StatusReport(
            self.dagId,
            parse_exec_ts(self.execTs),
            self.taskId,
            self.retry,
            status,
            self.taskError,
            self.leaseToken,
            self.output,
            self.branch,
        )


_UPDATE_DEFAULTS = {"taskError": None, "leaseToken": None, "output": None, "branch": None}


def _items(wire: type[_W], value: Any, max_items: int) -> list[_W] | None:
    """A list of at most ``max_items`` objects, each taken by ``wire``'s check; else None."""
    if type(value) is not list or len(value) > max_items:
        return None
    out = []
    for item in value:
        found = wire.check(item) if type(item) is dict else None
        if found is None:
            return None
        out.append(found)
    return out


def _updates(value: Any) -> list[StatusUpdate] | None:
    return _items(StatusUpdate, value, 1000)


@dataclass(frozen=True, slots=True)
class StatusUpdates:
    """Several reports, as :class:`ppacer.api.inputs.TaskStatusUpdates`."""

    updates: list[StatusUpdate]

    @classmethod
    def check(cls, data: Mapping[str, Any]) -> StatusUpdates | None:
        updates = _updates(data.get("updates"))
        return None if updates is None else cls(updates)

    @classmethod
    def from_valid(cls, data: Mapping[str, Any]) -> StatusUpdates:
        return cls([StatusUpdate.from_valid(u) for u in data["updates"]])


@dataclass(frozen=True, slots=True)
class ReportAndPopBody:
    """Reports, then attempts to take, as :class:`ppacer.api.inputs.ReportAndPopInput`."""

    updates: list[StatusUpdate]
    executor: str
    max: int = 1

    @classmethod
    def check(cls, data: Mapping[str, Any]) -> ReportAndPopBody | None:
        updates = _updates(data.get("updates"))
        executor = data.get("executor")
        n = data.get("max", 1)
        if updates is None or not _text(executor, 1, 200) or not _int(n, 0, 1000):
            return None
        return cls(updates, data["executor"], n)

    @classmethod
    def from_valid(cls, data: Mapping[str, Any]) -> ReportAndPopBody:
        updates = [StatusUpdate.from_valid(u) for u in data["updates"]]
        return cls(updates, data["executor"], data["max"])


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """An executor is alive, as :class:`ppacer.api.inputs.HeartbeatInput`."""

    executor: str
    leases: list[str] = field(default_factory=list)
    running: int = 0
    capacity: int | None = None

    @classmethod
    def check(cls, data: Mapping[str, Any]) -> Heartbeat | None:
        get = data.get
        capacity = get("capacity")
        if (
            _text(get("executor"), 1, 200)
            and _absent_or(data, "leases", _texts)
            and _absent_or(data, "running", lambda v: _int(v, 0))
            and (capacity is None or _int(capacity, 1))
        ):
            return cls(data["executor"], get("leases", []), get("running", 0), capacity)
        return None

    @classmethod
    def from_valid(cls, data: Mapping[str, Any]) -> Heartbeat:
        return build(cls, data)


def _registration_defaults() -> dict[str, Any]:
    return {
        "queues": ["default"],
        "versions": {},
        "retained": {},
        "labels": {},
        "ppacerVersion": None,
        "protocolVersion": PROTOCOL_VERSION,
    }


@dataclass(frozen=True, slots=True)
class Registration:
    """Who an executor is and what it can run, as
    :class:`ppacer.api.inputs.ExecutorRegistration`."""

    executor: str
    queues: list[str] = field(default_factory=lambda: ["default"])
    versions: dict[str, dict[str, str]] = field(default_factory=dict)
    retained: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    ppacerVersion: str | None = None
    protocolVersion: int = PROTOCOL_VERSION

    @classmethod
    def check(cls, data: Mapping[str, Any]) -> Registration | None:
        get = data.get
        if (
            _text(get("executor"), 1, 200)
            and _absent_or(data, "queues", lambda v: _texts(v, 1, 100))
            and _absent_or(data, "versions", lambda v: _nested_texts(v, _is_str))
            and _absent_or(data, "retained", lambda v: _nested_texts(v, _is_str_list))
            and _absent_or(data, "labels", _text_map)
            and _maybe_text(get("ppacerVersion"), 100)
            and _absent_or(data, "protocolVersion", lambda v: _int(v, 1))
        ):
            return build(cls, {**_registration_defaults(), **data})
        return None

    @classmethod
    def from_valid(cls, data: Mapping[str, Any]) -> Registration:
        return build(cls, data)


@dataclass(frozen=True, slots=True)
class LogRecordIn:
    """One shipped log record, as :class:`ppacer.api.inputs.LogRecordInput`."""

    dagId: str
    execTs: str
    taskId: str
    retry: int
    seq: int
    insertTs: str
    level: str
    message: str
    attributes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def check(cls, data: Mapping[str, Any]) -> LogRecordIn | None:
        get = data.get
        if (
            _text(get("dagId"))
            and _text(get("execTs"))
            and _text(get("taskId"))
            and _int(get("retry"), 0)
            and _int(get("seq"), 0, 2**62)
            and _text(get("insertTs"))
            and _text(get("level"), 1, 20)
            and _text(get("message"), 0)  # free text: NUL becomes U+FFFD, by the model
            and _absent_or(data, "attributes", _json_object)
        ):
            return build(cls, {"attributes": {}, **data})
        return None

    @classmethod
    def from_valid(cls, data: Mapping[str, Any]) -> LogRecordIn:
        return build(cls, data)

    def to_record(self) -> LogRecord:
        """The record, timestamps in stored form (a bad one is a 400 naming it)."""
        return LogRecord(
            self.dagId,
            parse_exec_ts(self.execTs),
            self.taskId,
            self.retry,
            self.seq,
            parse_exec_ts(self.insertTs, "insertTs"),
            self.level,
            self.message,
            self.attributes,
        )


@dataclass(frozen=True, slots=True)
class LogShipment:
    """Log records an executor ships, as :class:`ppacer.api.inputs.TaskLogsInput`."""

    executor: str
    records: list[LogRecordIn]

    @classmethod
    def check(cls, data: Mapping[str, Any]) -> LogShipment | None:
        records = _items(LogRecordIn, data.get("records"), 5000)
        if records is None or not _text(data.get("executor"), 1, 200):
            return None
        return cls(data["executor"], records)

    @classmethod
    def from_valid(cls, data: Mapping[str, Any]) -> LogShipment:
        return cls(data["executor"], [LogRecordIn.from_valid(r) for r in data["records"]])


# Query parameters are text: plain decimal numbers are read here, anything else by the model.
_DECIMAL = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9})?")
_COUNT = re.compile(r"[1-9][0-9]{0,3}")


@dataclass(frozen=True, slots=True)
class PopQuery:
    """A long poll's wait and the executor's name, as :class:`ppacer.api.params.PopQuery`."""

    wait_s: float = 0.0
    executor: str | None = None

    @classmethod
    def check(cls, data: Mapping[str, Any]) -> PopQuery | None:
        wait = _wait(data)
        executor = data.get("executor")
        if wait is None or not (executor is None or len(executor) <= 200):
            return None
        return cls(wait, executor)

    @classmethod
    def from_valid(cls, data: Mapping[str, Any]) -> PopQuery:
        return build(cls, data)


@dataclass(frozen=True, slots=True)
class PopBatchQuery:
    """As :class:`PopQuery`, and how many attempts at most, as
    :class:`ppacer.api.params.PopBatchQuery`."""

    wait_s: float = 0.0
    executor: str | None = None
    max: int = 1

    @classmethod
    def check(cls, data: Mapping[str, Any]) -> PopBatchQuery | None:
        first = PopQuery.check(data)
        n = data.get("max", "1")
        if first is None or _COUNT.fullmatch(n) is None or int(n) > 1000:
            return None
        return cls(first.wait_s, first.executor, int(n))

    @classmethod
    def from_valid(cls, data: Mapping[str, Any]) -> PopBatchQuery:
        return build(cls, data)


def _wait(data: Mapping[str, Any]) -> float | None:
    text = data.get("wait_s")
    if text is None:
        return 0.0
    return float(text) if _DECIMAL.fullmatch(text) else None
