"""ppacer's exceptions: one base class and a few precise subclasses."""

from __future__ import annotations

import re

__all__ = [
    "ERROR_BY_STATUS",
    "ConflictError",
    "DagValidationError",
    "DuplicateDagError",
    "InvalidInputError",
    "NotFoundError",
    "PpacerError",
    "ProtocolError",
    "SchedulerUnavailableError",
    "TLSError",
    "UnauthorizedError",
]


class PpacerError(Exception):
    """Base class of every error ppacer raises on purpose.

    ``http_status`` is the HTTP status an API answer carries for it: the server
    maps errors to answers, and the client answers back to errors, by this one
    attribute.
    """

    http_status = 500


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

    http_status = 400


# "execTs: not a timestamp ...": the message of one bad field names it first.
_FIELD_FIRST = re.compile(r"([A-Za-z_][\w.]*): (.+)", re.DOTALL)


class NotFoundError(PpacerError, LookupError):
    """A DAG, DAG run or task that was asked for does not exist."""

    http_status = 404


class ConflictError(PpacerError):
    """The request is valid but conflicts with the current state (e.g. restart of a running run)."""

    http_status = 409


class ProtocolError(PpacerError):
    """An answer is not what a ppacer scheduler answers (is the URL a ppacer scheduler's?)."""

    http_status = 502


class SchedulerUnavailableError(PpacerError, ConnectionError):
    """The scheduler could not be reached, or answered with a server error."""

    http_status = 503


#: The error class of each 4xx status the API answers with (the client's side of the mapping).
class UnauthorizedError(PpacerError):
    """The scheduler refused the API token (401): missing or wrong."""

    http_status = 401


class TLSError(PpacerError):
    """The HTTPS connection could not be trusted or made: a configuration problem, not an outage.

    The scheduler's certificate is not signed by a trusted CA (give its CA with
    ``ca_file``), or the URL says https:// to a server speaking plain HTTP.
    """

    http_status = 502


ERROR_BY_STATUS: dict[int, type[PpacerError]] = {
    cls.http_status: cls
    for cls in (InvalidInputError, UnauthorizedError, NotFoundError, ConflictError)
}
