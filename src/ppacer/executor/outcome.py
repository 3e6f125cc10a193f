"""How a task attempt ended: the one result type of every way of running a task."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from ppacer.dag.task import MAX_OUTPUT_BYTES, Branch

__all__ = ["Outcome", "failure_of", "outcome_of"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """SUCCESS with the task's output and the branch it follows, or FAILED with an error text.

    Whether the attempt ran in a thread, as a coroutine or in a child process,
    this is what comes back; the executor turns it into a status report.
    """

    # "Type: message" of what stopped the attempt; None for a success.
    error: str | None = None
    # The JSON value the task returned (for its children), and the children a branch follows.
    output: Any = None
    branch: list[str] | None = None
    # The error is already in the task's log (with its traceback).
    logged: bool = False

    @property
    def is_success(self) -> bool:
        """True when the attempt succeeded."""
        return self.error is None


def outcome_of(result: object) -> Outcome:
    """Turn what ``execute`` returned into an :class:`Outcome` (checking it is JSON)."""
    branch = None
    if isinstance(result, Branch):
        branch, result = list(result.follow), result.value
    if result is None:
        return Outcome(branch=branch)
    try:
        text = json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return Outcome(
            error=f"OutputError: the returned {type(result).__name__} is not JSON-serialisable: "
            f"{exc}"
        )
    if len(text.encode()) > MAX_OUTPUT_BYTES:
        return Outcome(
            error=f"OutputError: the returned value is {len(text.encode())} bytes of JSON; "
            f"the limit is {MAX_OUTPUT_BYTES} (store big data elsewhere and return a reference)"
        )
    return Outcome(output=json.loads(text), branch=branch)


def failure_of(exc: BaseException, logger: logging.LoggerAdapter[logging.Logger]) -> Outcome:
    """The FAILED outcome of a task that raised ``exc``, logged with its traceback.

    Any exception counts, ``SystemExit`` and ``KeyboardInterrupt`` included:
    they end this attempt, not the executor.
    """
    logger.error("task failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
    return Outcome(error=f"{type(exc).__name__}: {exc}", logged=True)
