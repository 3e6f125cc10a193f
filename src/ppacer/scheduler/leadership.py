"""Who schedules: one scheduler per database leads; with PostgreSQL, others stand by.

**SQLite** is single-scheduler: a scheduler holds an exclusive lock on a file
beside the database for as long as it runs (:class:`FileLock`); a second one
is refused with a message naming the first (its pid, host and start).

**PostgreSQL** may have any number of schedulers on one database; exactly one
leads (:class:`LeaderLease`). Leadership is a lease in the one row of
``schedulerleader``: the leader renews it every second and it expires by the
database's own clock (``clock_timestamp()``), so the schedulers' clocks do not
matter. Each acquisition increments the row's **epoch**, and every write
transaction of the leader checks, as it commits, that the row still names it
with its epoch (``SELECT ... FOR SHARE``): a leader that was paused (SIGSTOP)
or cut off past its lease and wakes up cannot write - its commit fails, it
steps down. A takeover waits for that check's row lock, so a commit in flight
lands before the new leader reads the database.

The row also holds the secret lease tokens are derived from (see
:mod:`ppacer.scheduler.leases`): every scheduler of the database gives an
attempt the same token, so a new leader takes the heartbeats and reports of
attempts its predecessor handed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import Connection, Engine, create_engine, event, text

from ppacer.db.engine import sqlite_file
from ppacer.errors import PpacerError
from ppacer.scheduler.dbgate import describe

__all__ = [
    "FencedError",
    "FileLock",
    "LeaderLease",
    "LeaderRow",
    "Leadership",
    "SchedulerConflictError",
    "StandbyError",
    "instance_name",
    "read_secret",
]

log = logging.getLogger("ppacer.scheduler")


class SchedulerConflictError(PpacerError):
    """Another scheduler uses this SQLite database (one scheduler per file)."""


class FencedError(PpacerError):
    """This scheduler lost its leadership: it may not write any more."""

    http_status = 503


class StandbyError(PpacerError):
    """This scheduler stands by: another one leads and takes the writes (HTTP 503)."""

    http_status = 503


def instance_name() -> str:
    """This scheduler as a leadership holder: ``host:pid:random`` (unique per scheduler)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def read_secret(conn: Connection) -> bytes:
    """The secret lease tokens are derived from (made by the migration, one per database)."""
    value = conn.execute(text('SELECT "Secret" FROM schedulerleader WHERE "Id" = 1')).scalar()
    if not value:
        raise PpacerError("schedulerleader has no secret: run `ppacer db upgrade`")
    return bytes.fromhex(str(value))


class FileLock:
    """An exclusive lock on ``<database>.lock`` for the life of the scheduler."""

    def __init__(self, database: str) -> None:
        self.path = f"{database}.lock"
        self._file: IO[str] | None = None

    def acquire(self, url: str | None = None) -> None:
        """Take the lock, or raise :class:`SchedulerConflictError` naming who holds it."""
        handle = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            database = self.path.removesuffix(".lock")
            raise SchedulerConflictError(
                f"{database} is used by another scheduler ({holder}); SQLite takes one "
                "scheduler per file: stop that one, or use PostgreSQL for a standby scheduler"
            ) from None
        started = datetime.now(UTC).isoformat(timespec="seconds")
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}")
        if url:
            handle.write(f", {url}")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Give the lock up (the process ending does too)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


@dataclass(frozen=True, slots=True)
class LeaderRow:
    """The leadership row as one scheduler sees it."""

    holder: str | None
    epoch: int
    # Seconds the lease still runs, by the database's clock (<= 0: expired or free).
    remaining_s: float
    url: str | None
    code_hash: str | None

    @property
    def is_held(self) -> bool:
        """Whether a live leader holds it."""
        return self.holder is not None and self.remaining_s > 0


class LeaderLease:
    """This scheduler's part in the leadership of a PostgreSQL database."""

    def __init__(
        self, engine: Engine, *, instance: str, url: str | None, code_hash: str, ttl_s: float
    ) -> None:
        # The scheduler's engine: its commits are fenced. The lease's own statements go
        # through an engine of their own (its commits must not be).
        self.fenced = engine
        self.engine = create_engine(engine.url, pool_size=2, max_overflow=2, pool_pre_ping=True)
        self.instance = instance
        self.url = url
        self.code_hash = code_hash
        self.ttl_s = ttl_s
        #: The epoch of this scheduler's leadership (None: it does not lead).
        self.epoch: int | None = None
        #: Called (from the committing thread) when a write was refused: leadership is lost.
        self.on_fenced: Callable[[], None] | None = None
        self._fencing = False

    def read(self) -> LeaderRow:
        """The row now (by the database's clock)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    'SELECT "Holder", "Epoch", "Url", "CodeHash", '
                    'EXTRACT(EPOCH FROM ("LeaseUntil" - clock_timestamp())) AS remaining '
                    'FROM schedulerleader WHERE "Id" = 1'
                )
            ).one()
        return LeaderRow(row[0], int(row[1]), float(row[4] or 0.0), row[2], row[3])

    def try_acquire(self) -> int | None:
        """Lead if nobody leads (or this scheduler already does); the new epoch, or None."""
        with self.engine.begin() as conn:
            epoch = conn.execute(
                text(
                    'UPDATE schedulerleader SET "Holder" = :me, "Epoch" = "Epoch" + 1, '
                    '"LeaseUntil" = clock_timestamp() + make_interval(secs => :ttl), '
                    '"Url" = :url, "CodeHash" = :code, "UpdateTs" = :now '
                    'WHERE "Id" = 1 AND ("Holder" IS NULL OR "Holder" = :me '
                    'OR "LeaseUntil" IS NULL OR "LeaseUntil" < clock_timestamp()) '
                    'RETURNING "Epoch"'
                ),
                self._params(),
            ).scalar()
        self.epoch = int(epoch) if epoch is not None else None
        return self.epoch

    def renew(self) -> bool:
        """Extend the lease; False if this scheduler no longer leads (it must step down)."""
        if self.epoch is None:
            return False
        with self.engine.begin() as conn:
            found = conn.execute(
                text(
                    'UPDATE schedulerleader SET "LeaseUntil" = clock_timestamp() + '
                    'make_interval(secs => :ttl), "UpdateTs" = :now, "CodeHash" = :code '
                    'WHERE "Id" = 1 AND "Holder" = :me AND "Epoch" = :epoch '
                    'AND "LeaseUntil" > clock_timestamp() RETURNING "Epoch"'
                ),
                {**self._params(), "epoch": self.epoch},
            ).scalar()
        if found is None:
            self.epoch = None
        return found is not None

    def release(self) -> None:
        """Give leadership up at once (a graceful stop: a standby takes over now)."""
        if self.epoch is None:
            return
        # CodeHash is cleared too: a hand-over is deliberate, any standby may take it.
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    'UPDATE schedulerleader SET "Holder" = NULL, "LeaseUntil" = NULL, '
                    '"CodeHash" = NULL WHERE "Id" = 1 AND "Holder" = :me AND "Epoch" = :epoch'
                ),
                {"me": self.instance, "epoch": self.epoch},
            )
        self.epoch = None

    # ------------------------------------------------------------------ fencing

    def fence(self) -> None:
        """From now on every write transaction checks, as it commits, that this one leads."""
        if not self._fencing:
            event.listen(self.fenced, "commit", self._check)
            self._fencing = True

    def unfence(self) -> None:
        """Stop checking (the scheduler stopped)."""
        if self._fencing:
            event.remove(self.fenced, "commit", self._check)
            self._fencing = False

    def close(self) -> None:
        """Release the lease engine's connections."""
        self.unfence()
        self.engine.dispose()

    def _check(self, conn: Connection) -> None:
        epoch = self.epoch
        held = (
            epoch is not None
            and conn.execute(
                text(
                    'SELECT 1 FROM schedulerleader WHERE "Id" = 1 AND "Holder" = :me '
                    'AND "Epoch" = :epoch FOR SHARE'
                ),
                {"me": self.instance, "epoch": epoch},
            ).first()
            is not None
        )
        if not held:
            if self.on_fenced is not None:
                self.on_fenced()
            raise FencedError(
                f"this scheduler ({self.instance}) no longer leads (its epoch was {epoch}): "
                "its write was refused"
            )

    def _params(self) -> dict[str, Any]:
        return {
            "me": self.instance,
            "ttl": self.ttl_s,
            "url": self.url,
            "code": self.code_hash,
            "now": datetime.now(UTC).isoformat(),
        }


class Leadership:
    """Whether this scheduler leads, and keeping it so (or waiting for its turn).

    SQLite: the scheduler leads from :meth:`acquire` (the file lock) to
    :meth:`release`. PostgreSQL: :meth:`acquire` leads if nobody does; then
    :meth:`hold` renews the lease until it is lost, and :meth:`wait_for_turn`
    (a standby's loop) takes over once the leader's lease lapsed.
    """

    def __init__(
        self, engine: Engine, *, url: str | None, code_hash: str, ttl_s: float, poll_s: float
    ) -> None:
        self.instance = instance_name()
        self.code_hash = code_hash
        self.ttl_s = ttl_s
        self.poll_s = poll_s
        self.lease: LeaderLease | None = None
        self.lock: FileLock | None = None
        if engine.dialect.name == "postgresql":
            self.lease = LeaderLease(
                engine, instance=self.instance, url=url, code_hash=code_hash, ttl_s=ttl_s
            )
        elif (path := sqlite_file(engine)) is not None:
            self.lock = FileLock(path)
        self.url = url
        #: The leader as last read by a standby (None: not read, or this one leads).
        self.leader: LeaderRow | None = None
        #: Why this standby does not take over (its DAG code differs from the leader's).
        self.refusal: str | None = None
        self._valid_until = 0.0
        self._fenced = False
        self._resigned = False
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def is_lease(self) -> bool:
        """Whether leadership may change hands while running (PostgreSQL)."""
        return self.lease is not None

    @property
    def epoch(self) -> int | None:
        """The epoch of this scheduler's leadership (PostgreSQL and leading; else None)."""
        return self.lease.epoch if self.lease is not None else None

    def use_code(self, code_hash: str) -> None:
        """The DAG code changed (a hot reload): compare and advertise this fingerprint now."""
        self.code_hash = code_hash
        if self.lease is not None:
            self.lease.code_hash = code_hash

    def is_valid(self) -> bool:
        """Whether this scheduler surely still leads now (by its own monotonic clock).

        A leader hands out no work past the point its lease might have lapsed
        unseen (paused, cut off): before another one may lead.
        """
        if self.lease is None:
            return True
        return not self._fenced and time.monotonic() < self._valid_until

    def acquire(self) -> bool:
        """Lead now if possible: SQLite (raises :class:`SchedulerConflictError`) or a free lease."""
        if self.lock is not None:
            self.lock.acquire(self.url)
        if self.lease is None:
            return True
        started = time.monotonic()
        if self.lease.try_acquire() is None:
            self.leader = self.lease.read()
            return False
        self._led(started)
        return True

    def _led(self, renewed_at: float) -> None:
        assert self.lease is not None
        self._valid_until = renewed_at + self.ttl_s * 0.8
        self._fenced = False
        self.leader = None
        self.refusal = None
        self.lease.on_fenced = self._on_fenced
        self.lease.fence()
        log.info(
            "this scheduler (%s) leads, epoch %s; lease %.1f s",
            self.instance,
            self.epoch,
            self.ttl_s,
        )

    def _on_fenced(self) -> None:
        self._fenced = True
        if self._wake is not None:
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._wake.set)

    async def hold(self) -> str:
        """Renew the lease until it is lost; return why (the caller steps down).

        A renewal failing on a database error is retried until the lease might
        have lapsed; then this scheduler steps down without waiting for the database.
        """
        assert self.lease is not None
        lease = self.lease
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        every_s = self.ttl_s / 4
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), every_s)
            if self._fenced:
                return "a write was refused: another scheduler leads now"
            if time.monotonic() >= self._valid_until:
                return f"the lease was not renewed within {self.ttl_s * 0.8:.1f}s"
            started = time.monotonic()
            try:
                renewed = await asyncio.to_thread(lease.renew)
            except Exception as exc:
                log.warning("could not renew the leadership lease: %s", describe(exc))
                continue
            if not renewed:
                return "the lease lapsed and was taken (this scheduler was paused or cut off)"
            self._valid_until = started + self.ttl_s * 0.8

    async def wait_for_turn(self) -> None:
        """A standby's loop: return once this scheduler leads."""
        assert self.lease is not None
        lease = self.lease
        seen_holder: str | None = None
        while True:
            try:
                row = await asyncio.to_thread(lease.read)
            except Exception as exc:
                log.warning("standby: cannot read the leadership: %s", describe(exc))
                await asyncio.sleep(self.poll_s)
                continue
            self.leader = row
            if row.holder != seen_holder and row.is_held:
                seen_holder = row.holder
                log.info("standing by: %s leads (%s)", row.holder, row.url or "no URL")
            self.refusal = self._refusal(row)
            if not row.is_held and self.refusal is None and not self._resigned:
                started = time.monotonic()
                try:
                    acquired = await asyncio.to_thread(lease.try_acquire)
                except Exception as exc:
                    log.warning("standby: cannot take the leadership: %s", describe(exc))
                    acquired = None
                if acquired is not None:
                    self._led(started)
                    return
            await asyncio.sleep(self.poll_s)

    def _refusal(self, row: LeaderRow) -> str | None:
        if row.code_hash is None or row.code_hash == self.code_hash:
            return None
        message = (
            f"this standby's DAG code (fingerprint {self.code_hash}) differs from the "
            f"leader's ({row.code_hash}); it will not take over: deploy the same DAG code "
            "to every scheduler (a leader stopped with SIGTERM hands over to any code)"
        )
        if message != self.refusal:
            log.error("%s", message)
        return message

    def resign(self) -> None:
        """Give up leadership for good (the scheduler stops): release it now, never retake it.

        Writes still in flight are refused by the fencing check (and answered 503).
        SQLite's file lock, which fences nothing, is kept until :meth:`release`.
        Blocking; thread-safe.
        """
        self._resigned = True
        self._release_lease()

    def release(self) -> None:
        """Give up leadership (a stop): a standby takes over at once. Never raises."""
        if self.lock is not None:
            self.lock.release()
        self._release_lease()

    def _release_lease(self) -> None:
        if self.lease is not None:
            try:
                self.lease.release()
            except Exception as exc:
                log.warning("could not release the leadership: %s", describe(exc))

    def step_down(self) -> None:
        """Leadership was lost: stop fencing-checks' callbacks until led again."""
        if self.lease is not None:
            self.lease.epoch = None
            self._valid_until = 0.0

    def close(self) -> None:
        """Release the lease engine."""
        if self.lease is not None:
            self.lease.close()
