"""Telling a configuration problem of an executor from an outage of its scheduler.

Some failures will not pass by waiting: a missing or wrong token (401), a
scheduler of an older protocol (409 on register), a TLS certificate not
trusted, a URL that is not a ppacer scheduler. :func:`config_problem` turns
those into one line naming the URL and what to do, raised as
:class:`ExecutorConfigError`, and the executor stops (``ppacer executor``
exits with code 2); everything else is an outage, met with the calm back-off.
"""

from __future__ import annotations

from ppacer.api.client import TLSError, UnauthorizedError
from ppacer.errors import ConflictError, PpacerError, ProtocolError

__all__ = ["ExecutorConfigError", "config_problem"]


class ExecutorConfigError(PpacerError):
    """The scheduler refuses this executor for a reason waiting will not fix.

    The message is one line: the URL, what is wrong, what to do.
    """

    http_status = 400


def config_problem(exc: BaseException, url: str, *, registering: bool = False) -> str | None:
    """The one line saying what to fix, when ``exc`` is a configuration problem; else None."""
    if isinstance(exc, UnauthorizedError):
        return (
            f"the scheduler at {url} refused the API token ({exc}): give the scheduler's token "
            "with --token, PPACER_TOKEN or `token` in ppacer.toml"
        )
    if isinstance(exc, TLSError):
        return str(exc)
    if isinstance(exc, ProtocolError):
        return f"{exc} (check --url / PPACER_URL)"
    if registering and isinstance(exc, ConflictError):
        return (
            f"the scheduler at {url} refused this executor ({exc}): run a ppacer scheduler "
            "at least as new as this executor"
        )
    return None
