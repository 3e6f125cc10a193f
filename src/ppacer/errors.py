"""ppacer's exceptions: one base class and a few precise subclasses."""

from __future__ import annotations

import re

__all__ = [
    "ConflictError",
    "DagValidationError",
    "DuplicateDagError",
    "InvalidInputError",
    "NotFoundError",
    "PpacerError",
    "SchedulerUnavailableError",
]


class PpacerError(Exception):
    """Base class of every error ppacer raises on purpose."""


class DagValidationError(PpacerError, ValueError):
    """A DAG is not valid: it names the DAG and, where there is one, the task."""

    def __init__(self, dag_id: str, reason: str, task_id: str | None = None) -> None:
        self.dag_id = dag_id
        self.task_id = task_id
        self.reason = reason
        where = f"DAG {dag_id!r}" + (f", task {task_id!r}" if task_id is not None else "")
        super().__init__(f"{where}: {reason}")


class DuplicateDagError(PpacerError, ValueError):
    """A registry already holds a DAG with this id."""

    def __init__(self, dag_id: str) -> None:
        self.dag_id = dag_id
        super().__init__(f"DAG {dag_id!r} is already in the registry")


class InvalidInputError(PpacerError, ValueError):
    """A request or argument is malformed; the message says which field and why.

    ``detail`` (the API's ``detail``) lists each bad field as ``{"field", "problem"}``
    when there are such.
    """

    def __init__(self, message: str, detail: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        if detail is None and (m := _FIELD_FIRST.match(message)) is not None:
            detail = [{"field": m[1], "problem": m[2]}]
        self.detail = detail


# "execTs: not a timestamp ...": the message of one bad field names it first.
_FIELD_FIRST = re.compile(r"([A-Za-z_][\w.]*): (.+)", re.DOTALL)


class NotFoundError(PpacerError, LookupError):
    """A DAG, DAG run or task that was asked for does not exist."""


class ConflictError(PpacerError):
    """The request is valid but conflicts with the current state (e.g. restart of a running run)."""


class SchedulerUnavailableError(PpacerError, ConnectionError):
    """The scheduler could not be reached, or answered with a server error."""
