"""Leases on task attempts handed to executors, and the executors that hold them.

Every attempt an executor pops is a lease with a token and an expiry. The
executor renews its leases with heartbeats while the tasks run; a lease that
is not renewed in time (the executor was killed, the network is cut, a client
popped the task and went away) expires, and the task scheduler fails the
attempt with the reason "executor lost" (retried per the task's config).
Liveness is about progress: a lease is never renewed past the attempt's own
timeout (plus a grace period), so a heartbeat from an executor whose task
thread is stuck does not keep it alive.

A lease's token is derived from its attempt and a secret (an HMAC): whoever
knows the secret gives an attempt the same token again, so after a restart of
the scheduler (or a takeover by another, sharing the secret) the attempts that
were running keep their leases, and their executors' heartbeats and reports
are accepted as before. A new attempt (the next retry) has another token.

:class:`LeaseTable` is the bare bookkeeping: times are passed in, so it is
tested with plain numbers. :class:`LeaseKeeper` is what the task scheduler
uses: it reads the time from the scheduler's clock (``clock.monotonic()``, real
elapsed seconds with the system clock; with a
:class:`~ppacer.timeutils.ManualClock` a lease expires only when the test
moves the clock) and knows which executor holds what.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from ppacer.api.models import TaskToExec
from ppacer.scheduler.routing import ANONYMOUS, Capability
from ppacer.timeutils import Clock

__all__ = ["AttemptKey", "ExecutorInfo", "Lease", "LeaseKeeper", "LeaseTable", "lease_token"]

log = logging.getLogger("ppacer.scheduler")

# (dag_id, exec_ts, task_id, retry)
AttemptKey = tuple[str, str, str, int]


@dataclass(slots=True)
class Lease:
    """One attempt held by one executor."""

    token: str
    attempt: AttemptKey
    executor: str
    granted: float
    expires: float
    # The lease is never renewed past this instant (the attempt's timeout + grace).
    deadline: float
    # Given back after a restart (or takeover) to an attempt found RUNNING, before its
    # executor was heard from: if no heartbeat renews it, the attempt is queued
    # again (its executor is gone with the old scheduler) rather than failed.
    provisional: bool = False

    @property
    def describe(self) -> str:
        """Human form of the attempt: ``dag/task retry N at exec_ts``."""
        dag_id, exec_ts, task_id, retry = self.attempt
        return f"{dag_id}/{task_id} retry {retry} at {exec_ts}"


@dataclass(slots=True)
class ExecutorInfo:
    """An executor the scheduler has heard from (by pop or heartbeat)."""

    name: str
    first_seen: datetime
    last_seen: datetime
    # Tasks it said it runs, and how many it can run at once (from heartbeats).
    running: int = 0
    capacity: int | None = None
    # Leases it holds now.
    leases: set[str] = field(default_factory=set)
    # What it serves and has (see ppacer.scheduler.routing): set when it registers.
    capability: Capability = ANONYMOUS
    registered: bool = False
    # The ppacer version it runs, as it said when it registered.
    ppacer_version: str | None = None


def lease_token(secret: bytes, attempt: AttemptKey) -> str:
    """The token of ``attempt``'s lease: an HMAC of the attempt with ``secret``."""
    text = "\x1f".join(str(part) for part in attempt).encode()
    return hmac.new(secret, text, hashlib.sha256).hexdigest()[:24]


class LeaseTable:
    """Leases by token and by attempt, with their expiries in a heap."""

    def __init__(self, secret: bytes | None = None) -> None:
        # Tokens are derived with it (random: tokens of this table only).
        self.secret = secret if secret is not None else secrets.token_bytes(32)
        self.by_token: dict[str, Lease] = {}
        self.by_attempt: dict[AttemptKey, str] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self.by_token)

    def grant(
        self, attempt: AttemptKey, executor: str, now: float, ttl_s: float, deadline: float
    ) -> Lease:
        """A new lease on ``attempt`` (replacing any older one)."""
        self.release(attempt)
        lease = Lease(
            token=lease_token(self.secret, attempt),
            attempt=attempt,
            executor=executor,
            granted=now,
            expires=min(now + ttl_s, deadline),
            deadline=deadline,
        )
        self.by_token[lease.token] = lease
        self.by_attempt[attempt] = lease.token
        heapq.heappush(self._heap, (lease.expires, lease.token))
        return lease

    def renew(self, token: str, now: float, ttl_s: float, *, force: bool = False) -> bool:
        """Extend a live lease by ``ttl_s`` (never past its deadline); False if it is gone.

        ``force`` renews a lease whose expiry passed (its clock was paused) and moves
        its deadline to at least ``now + ttl_s``.
        """
        lease = self.by_token.get(token)
        if lease is None or (lease.expires <= now and not force):
            return False
        if force:
            lease.deadline = max(lease.deadline, now + ttl_s)
        expires = min(now + ttl_s, lease.deadline)
        if expires > lease.expires:
            lease.expires = expires
            heapq.heappush(self._heap, (expires, token))
        if not force:  # its executor was heard from
            lease.provisional = False
        return True

    def release(self, attempt: AttemptKey) -> Lease | None:
        """Drop the lease on ``attempt`` (it finished or was taken back)."""
        token = self.by_attempt.pop(attempt, None)
        if token is None:
            return None
        return self.by_token.pop(token, None)

    def for_attempt(self, attempt: AttemptKey) -> Lease | None:
        """The live lease on ``attempt``, if any."""
        token = self.by_attempt.get(attempt)
        return self.by_token.get(token) if token is not None else None

    def pop_expired(self, now: float) -> list[Lease]:
        """Remove and return the leases whose expiry has passed."""
        out = []
        while self._heap and self._heap[0][0] <= now:
            expires, token = heapq.heappop(self._heap)
            lease = self.by_token.get(token)
            if lease is None or lease.expires != expires:
                continue  # released, or renewed (a later heap entry stands for it)
            self.release(lease.attempt)
            out.append(lease)
        return out

    def next_expiry(self) -> float | None:
        """When the earliest live lease expires (None: no leases)."""
        while self._heap:
            expires, token = self._heap[0]
            lease = self.by_token.get(token)
            if lease is not None and lease.expires == expires:
                return expires
            heapq.heappop(self._heap)
        return None


class LeaseKeeper:
    """The leases of one task scheduler and the executors holding them, on its clock."""

    def __init__(
        self,
        clock: Clock,
        *,
        lease_timeout_s: float,
        timeout_grace_s: float,
        secret: bytes | None = None,
        recovery_grace_s: float | None = None,
    ) -> None:
        self.clock = clock
        # How long a lease lives without a heartbeat.
        self.lease_timeout_s = lease_timeout_s
        # How long an attempt found RUNNING on start waits for its executor's heartbeat
        # (executors heartbeat every third of the lease timeout).
        self.recovery_grace_s = (
            min(lease_timeout_s, lease_timeout_s / 3 + 2.0)
            if recovery_grace_s is None
            else recovery_grace_s
        )
        # How long past an attempt's own timeout its lease may still be renewed.
        self.timeout_grace_s = timeout_grace_s
        self.table = LeaseTable(secret)
        #: Executors heard from (pops and heartbeats), by name.
        self.executors: dict[str, ExecutorInfo] = {}

    def __len__(self) -> int:
        return len(self.table)

    def seen(self, executor: str) -> ExecutorInfo:
        """Note that ``executor`` was heard from now (the first time, it connected)."""
        now = self.clock.now()
        info = self.executors.get(executor)
        if info is None:
            info = self.executors[executor] = ExecutorInfo(executor, now, now)
            log.info("executor %s connected", executor)
        info.last_seen = now
        return info

    def grant(self, attempt: AttemptKey, executor: str | None, timeout_s: float) -> Lease:
        """Lease ``attempt`` (whose task times out after ``timeout_s``) to ``executor``.

        A named executor was :meth:`seen` first and heartbeats; an anonymous
        client (such as the original ppacer's executor) does not, so its lease
        lasts until the task's timeout. No lease outlives the timeout plus grace.
        """
        now = self.clock.monotonic()
        ttl = self.lease_timeout_s
        if executor is None:
            ttl = max(ttl, timeout_s + self.timeout_grace_s)
        lease = self.table.grant(
            attempt, executor or "anonymous", now, ttl, now + timeout_s + self.timeout_grace_s
        )
        return self._held(lease, executor)

    def give_back(self, attempt: AttemptKey, executor: str | None, timeout_s: float) -> Lease:
        """The lease of an attempt found RUNNING after a restart, provisionally.

        Its token is the one its executor holds. The executor heartbeats within
        a third of the lease timeout if it is alive; until then the lease is
        provisional, and if it expires unrenewed the attempt is queued again.
        """
        now = self.clock.monotonic()
        wait_s = self.recovery_grace_s
        deadline = now + timeout_s + self.timeout_grace_s
        lease = self.table.grant(attempt, executor or "anonymous", now, wait_s, deadline)
        lease.provisional = True
        return self._held(lease, executor)

    def _held(self, lease: Lease, executor: str | None) -> Lease:
        if executor is not None:
            self.seen_once(executor).leases.add(lease.token)
        return lease

    def seen_once(self, executor: str) -> ExecutorInfo:
        """The executor's entry (made, not marked as heard from now, if it is new)."""
        info = self.executors.get(executor)
        if info is None:
            now = self.clock.now()
            info = self.executors[executor] = ExecutorInfo(executor, now, now)
        return info

    def lease(self, item: TaskToExec, executor: str | None, timeout_s: float) -> TaskToExec:
        """Lease the attempt ``item`` to ``executor`` (see :meth:`grant`): ``item`` with a token."""
        lease = self.grant(
            (item.dag_id, item.exec_ts, item.task_id, item.retry), executor, timeout_s
        )
        return item.with_lease(lease.token, self.lease_timeout_s)

    def take_back(self, item: TaskToExec) -> TaskToExec:
        """Release the lease on a leased ``item`` that was not handed over: the bare attempt."""
        self.release((item.dag_id, item.exec_ts, item.task_id, item.retry))
        return item.with_lease(None, None)

    def renew(self, token: str) -> bool:
        """Extend a live lease by the lease timeout (never past its deadline); False if gone."""
        return self.table.renew(token, self.clock.monotonic(), self.lease_timeout_s)

    def for_attempt(self, attempt: AttemptKey) -> Lease | None:
        """The live lease on ``attempt``, if any."""
        return self.table.for_attempt(attempt)

    def renew_all(self) -> None:
        """Give every live lease its full timeout again (never past its deadline).

        After an outage of the database: executors kept heartbeating, but the
        scheduler could not take their reports; one whose attempt ended may be
        retrying its report instead.
        """
        now = self.clock.monotonic()
        for token, lease in list(self.table.by_token.items()):
            self.table.renew(token, now, self.lease_timeout_s, force=True)
            # Until its executor is heard from again: if it is not, the attempt is queued
            # again (its report, if one comes, is still taken), not failed.
            lease.provisional = True

    def release(self, attempt: AttemptKey) -> None:
        """Drop the lease on ``attempt`` (it finished, failed or was taken back)."""
        lease = self.table.release(attempt)
        if lease is not None and lease.executor in self.executors:
            self.executors[lease.executor].leases.discard(lease.token)

    def release_task(self, dag_id: str, exec_ts: str, task_id: str) -> None:
        """Drop the leases on every attempt of one task of one run."""
        for attempt in list(self.table.by_attempt):
            if attempt[:3] == (dag_id, exec_ts, task_id):
                self.release(attempt)

    def heartbeat(
        self, executor: str, tokens: Iterable[str], running: int, capacity: int | None
    ) -> list[str]:
        """Renew ``executor``'s leases; return the tokens it no longer holds (expired, unknown).

        A lease is not renewed past its attempt's timeout (plus grace): liveness
        is about progress, not about the executor process being up.
        """
        info = self.seen(executor)
        info.running = running
        info.capacity = capacity
        now = self.clock.monotonic()
        lost = []
        for token in tokens:
            lease = self.table.by_token.get(token)
            if (
                lease is None
                or lease.executor != executor
                or not self.table.renew(token, now, self.lease_timeout_s)
            ):
                lost.append(token)
        return lost

    def pop_expired(self) -> list[Lease]:
        """Remove and return the leases whose expiry the clock has passed."""
        expired = self.table.pop_expired(self.clock.monotonic())
        for lease in expired:
            if lease.executor in self.executors:
                self.executors[lease.executor].leases.discard(lease.token)
        return expired

    def next_expiry(self) -> float | None:
        """When (``clock.monotonic()`` seconds) the earliest live lease expires; None: none."""
        return self.table.next_expiry()

    def lost_reason(self, lease: Lease, timeout_s: float) -> str:
        """Why an expired lease's attempt failed: its timeout (``timeout_s``) or a lost executor."""
        task_id = lease.attempt[2]
        if self.clock.monotonic() >= lease.deadline:
            return (
                f"TimeoutError: task {task_id!r} ran past its timeout of {timeout_s:g} s "
                f"(executor {lease.executor} did not report it in time)"
            )
        return (
            f"executor lost: executor {lease.executor} stopped renewing the lease on "
            f"{lease.describe} (no heartbeat for {self.lease_timeout_s:g} s)"
        )

    def view(self, connected_within_s: float | None = None) -> list[ExecutorInfo]:
        """Executors heard from, most recent first (within ``connected_within_s``, if given)."""
        now = self.clock.now()
        out = sorted(self.executors.values(), key=lambda e: e.last_seen, reverse=True)
        if connected_within_s is not None:
            out = [e for e in out if (now - e.last_seen).total_seconds() <= connected_within_s]
        return out
