"""Leases on task attempts handed to executors, and the executors that hold them.

Every attempt an executor pops is a lease with a token and an expiry. The
executor renews its leases with heartbeats while the tasks run; a lease that
is not renewed in time (the executor was killed, the network is cut, a client
popped the task and went away) expires, and the task scheduler fails the
attempt with the reason "executor lost" (retried per the task's config).
Liveness is about progress: a lease is never renewed past the attempt's own
timeout (plus a grace period), so a heartbeat from an executor whose task
thread is stuck does not keep it alive.

Times here are ``time.monotonic()`` seconds: leases measure real elapsed time,
whatever clock the scheduler uses for schedules.
"""

from __future__ import annotations

import heapq
import secrets
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["ExecutorInfo", "Lease", "LeaseTable"]

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


class LeaseTable:
    """Leases by token and by attempt, with their expiries in a heap."""

    def __init__(self) -> None:
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
            token=secrets.token_hex(12),
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

    def renew(self, token: str, now: float, ttl_s: float) -> bool:
        """Extend a live lease by ``ttl_s`` (never past its deadline); False if it is gone."""
        lease = self.by_token.get(token)
        if lease is None or lease.expires <= now:
            return False
        expires = min(now + ttl_s, lease.deadline)
        if expires > lease.expires:
            lease.expires = expires
            heapq.heappush(self._heap, (expires, token))
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
