"""Whether the scheduler can write to its database now, and getting back when it cannot.

A write that fails because the database is unavailable - locked past the busy
timeout, disk full, connections terminated or refused, unreachable - closes
the gate: the failure is logged once, the operation is answered "unavailable,
retry" (HTTP 503), nothing is acknowledged that was not committed, and the
scheduler's memory, which the failed transaction may have changed, is marked
stale. A prober (off the event loop) tries the database with bounded back-off;
when a write goes through again, the scheduler reconciles its memory with the
database (the unfinished runs are loaded again, the leases of running attempts
restart at their full timeout) and the gate opens. Errors that are not about
availability (a broken constraint, a bug) are not outages and keep their own
handling.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from ppacer.backoff import Backoff
from ppacer.db.engine import sqlite_file
from ppacer.errors import PpacerError
from ppacer.redact import redact_urls

__all__ = ["DatabaseGate", "DatabaseUnavailableError", "is_full", "is_unavailable"]

log = logging.getLogger("ppacer.scheduler")

# What an unavailable SQLite database says (other sqlite3.OperationalErrors are bugs).
_SQLITE_UNAVAILABLE = (
    "database is locked",
    "database table is locked",
    "disk is full",
    "disk i/o error",
    "unable to open database file",
    "readonly database",
)

# SQLite's names of a full file system (see is_full).
_SQLITE_FULL = frozenset({"SQLITE_FULL", "SQLITE_IOERR_SHMSIZE"})
# Free space a SQLite file's file system needs, after it was full, before a probe passes
# (bytes): a probe's empty transaction needs none, a scheduler's first writes do.
_MIN_FREE_BYTES = 4 * 2**20


class DatabaseUnavailableError(PpacerError):
    """The scheduler cannot write to its database now; ask again later (HTTP 503)."""

    http_status = 503


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is unavailable (rather than a request or bug)."""
    if isinstance(exc, DatabaseUnavailableError | PoolTimeoutError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        text_ = str(exc.orig if exc.orig is not None else exc).lower()
        if "sqlite" in type(exc.orig).__module__:
            return any(marker in text_ for marker in _SQLITE_UNAVAILABLE)
        return True  # PostgreSQL: connection refused, terminated, timeouts, disk full
    return isinstance(exc, ConnectionError | TimeoutError)


def is_full(exc: BaseException) -> bool:
    """Whether a database error says its disk (or file system) is full.

    SQLite: ``SQLITE_FULL`` ("database or disk is full"), or its shared-memory file
    could not grow (``SQLITE_IOERR_SHMSIZE``, "disk I/O error": what a full file system
    gives in WAL mode); PostgreSQL: SQLSTATE class 53, insufficient resources ("could
    not extend file ...: No space left on device").
    """
    orig = getattr(exc, "orig", exc)
    if "sqlite" in type(orig).__module__:
        name = getattr(orig, "sqlite_errorname", "")
        return name in _SQLITE_FULL or "disk is full" in str(orig).lower()
    state = getattr(orig, "sqlstate", None)
    return isinstance(state, str) and state.startswith("53")


def describe(exc: BaseException) -> str:
    """One line saying what went wrong (the driver's message, secrets masked)."""
    orig = getattr(exc, "orig", None)
    shown = orig if isinstance(orig, BaseException) else exc
    return redact_urls(" ".join(f"{type(shown).__name__}: {shown}".split()))[:300]


class DatabaseGate:
    """Open while the database takes writes; closed (and probed) while it does not."""

    def __init__(self, engine: Engine, *, max_backoff_s: float = 5.0) -> None:
        self.engine = engine
        self._backoff = Backoff(first_s=0.05, factor=2.0, cap_s=max_backoff_s)
        self._reason: str | None = None
        self._since: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._prober: asyncio.Task[None] | None = None
        # The outage began with a full disk (SQLite: a probe then checks for free space).
        self._full = False
        #: Called on the event loop when the database takes writes again; it reconciles
        #: the scheduler's memory. The gate opens only once it returned without error.
        self.on_recovered: Callable[[], Awaitable[None]] | None = None

    @property
    def is_open(self) -> bool:
        """Whether writes may be tried."""
        return self._reason is None

    @property
    def reason(self) -> str | None:
        """Why the gate is closed (None: it is open)."""
        return self._reason

    @property
    def closed_for_s(self) -> float:
        """Seconds since the gate closed (0 when open)."""
        return 0.0 if self._since is None else time.monotonic() - self._since

    def require_open(self) -> None:
        """Raise :class:`DatabaseUnavailableError` while the gate is closed."""
        if self._reason is not None:
            raise DatabaseUnavailableError(
                f"the scheduler's database is unavailable ({self._reason}); retry later"
            )

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the prober runs on."""
        self._loop = loop

    def failed(self, exc: BaseException) -> None:
        """A write failed with ``exc`` (an unavailability): close the gate, start probing.

        Logged once per outage. Call it on the event loop.
        """
        self._full = self._full or is_full(exc)
        if self._reason is None:
            self._reason = describe(exc)
            self._since = time.monotonic()
            log.error("database unavailable: %s; retrying with back-off", self._reason)
        if self._loop is not None and (self._prober is None or self._prober.done()):
            self._prober = self._loop.create_task(self._probe(), name="ppacer-db-prober")

    def stop(self) -> None:
        """Stop probing (the scheduler stops)."""
        if self._prober is not None:
            self._prober.cancel()

    def reset(self) -> None:
        """Open the gate without reconciling: memory is being rebuilt from the database anyway
        (this scheduler steps down, or takes over)."""
        self.stop()
        self._reason = self._since = None
        self._full = False

    async def _probe(self) -> None:
        self._backoff.reset()
        while self._reason is not None:
            await asyncio.sleep(self._backoff.next_s())
            try:
                await asyncio.to_thread(self._try_write)
            except Exception as exc:
                if not is_unavailable(exc):
                    log.warning("database probe: %s", describe(exc))
                continue
            try:
                if self.on_recovered is not None:
                    await self.on_recovered()
            except Exception as exc:
                if is_unavailable(exc):
                    continue
                log.exception("could not reconcile with the database; retrying")
                continue
            log.warning(
                "database available again after %.1f s; the scheduler reconciled with it",
                self.closed_for_s,
            )
            self._reason = self._since = None
            self._full = False

    def _try_write(self) -> None:
        """A write that takes the database's write lock, then rolls back (changes nothing)."""
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                if self._full:
                    self._require_free_space()
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                conn.exec_driver_sql("ROLLBACK")
            else:
                conn.execute(text("SELECT 1"))

    def _require_free_space(self) -> None:
        """After "disk full": the SQLite file's file system must have room again (an empty
        transaction passes on a full disk, and the gate would open and close in turn)."""
        path = sqlite_file(self.engine)
        if path is None:
            return
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
        if free < _MIN_FREE_BYTES:
            raise DatabaseUnavailableError(f"database or disk is full ({free} bytes free)")
