"""The executors' answers, read by hand on the executor's side and written by the server.

Each mirrors one answer model of :mod:`ppacer.api.schemas` (named in its docstring)
and reads as the JSON it is, by attribute or by item. Those an executor reads have
``check`` and ``from_valid`` as the requests of :mod:`ppacer.api.checked`: the
client tries the hand check first and otherwise lets the model decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["HeartbeatAnswer", "LogsStored", "Rejected", "Terms", "UpdateResults"]


def _str_list_or_absent(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key)
    return key not in data or (type(value) is list and all(type(v) is str for v in value))


class _JsonView:
    """An answer read by attribute or, as the JSON it is, by item (as
    :class:`ppacer.api.schemas.Answer`)."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._fields}

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_json().get(key, default)

    def keys(self) -> Any:
        return self.to_json().keys()

    def __contains__(self, key: object) -> bool:
        return key in self.to_json()


@dataclass(frozen=True, slots=True)
class UpdateResults(_JsonView):
    """Per report its HTTP status and error, as :class:`ppacer.api.schemas.BatchUpdateOut`."""

    results: list[tuple[int, str | None]]

    def to_json(self) -> dict[str, Any]:
        return {"results": [{"status": s, "error": e} for s, e in self.results]}


@dataclass(frozen=True, slots=True)
class Terms(_JsonView):
    """The scheduler's terms to an executor, as :class:`ppacer.api.schemas.RegistrationOut`."""

    _fields: ClassVar[tuple[str, ...]] = (
        "executor",
        "schedulerVersion",
        "protocolVersion",
        "leaseTimeoutS",
        "maxPopWaitS",
        "missingTasks",
        "mismatchedTasks",
    )
    executor: str
    schedulerVersion: str
    protocolVersion: int
    leaseTimeoutS: float
    maxPopWaitS: float
    missingTasks: list[str] = field(default_factory=list)
    mismatchedTasks: list[str] = field(default_factory=list)

    @classmethod
    def check(cls, data: Mapping[str, Any]) -> Terms | None:
        get = data.get
        if (
            type(get("executor")) is str
            and type(get("schedulerVersion")) is str
            and type(get("protocolVersion")) is int
            and type(get("leaseTimeoutS")) in (int, float)
            and type(get("maxPopWaitS")) in (int, float)
            and _str_list_or_absent(data, "missingTasks")
            and _str_list_or_absent(data, "mismatchedTasks")
        ):
            return cls.from_valid({"missingTasks": [], "mismatchedTasks": [], **data})
        return None

    @classmethod
    def from_valid(cls, data: Mapping[str, Any]) -> Terms:
        return cls(
            data["executor"],
            data["schedulerVersion"],
            data["protocolVersion"],
            float(data["leaseTimeoutS"]),
            float(data["maxPopWaitS"]),
            list(data["missingTasks"]),
            list(data["mismatchedTasks"]),
        )


@dataclass(frozen=True, slots=True)
class HeartbeatAnswer(_JsonView):
    """The leases an executor lost, as :class:`ppacer.api.schemas.HeartbeatOut`."""

    _fields: ClassVar[tuple[str, ...]] = ("lost", "leaseTimeoutS")
    lost: list[str]
    leaseTimeoutS: float


@dataclass(frozen=True, slots=True)
class Rejected(_JsonView):
    """A refused item of a batch, as :class:`ppacer.api.schemas.RejectedOut`."""

    _fields: ClassVar[tuple[str, ...]] = ("index", "error")
    index: int
    error: str


@dataclass(frozen=True, slots=True)
class LogsStored(_JsonView):
    """Records stored, re-sent copies skipped, records refused, as
    :class:`ppacer.api.schemas.TaskLogsStoredOut`."""

    stored: int
    duplicates: int
    rejected: list[Rejected]

    def to_json(self) -> dict[str, Any]:
        return {
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": [r.to_json() for r in self.rejected],
        }

    @classmethod
    def check(cls, data: Mapping[str, Any]) -> LogsStored | None:
        rejected = data.get("rejected")
        if (
            type(data.get("stored")) is int
            and type(data.get("duplicates")) is int
            and type(rejected) is list
            and all(
                type(r) is dict and type(r.get("index")) is int and type(r.get("error")) is str
                for r in rejected
            )
        ):
            return cls.from_valid(data)
        return None

    @classmethod
    def from_valid(cls, data: Mapping[str, Any]) -> LogsStored:
        rejected = [Rejected(r["index"], r["error"]) for r in data["rejected"]]
        return cls(data["stored"], data["duplicates"], rejected)
