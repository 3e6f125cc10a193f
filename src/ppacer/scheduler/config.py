"""Scheduler configuration: a frozen dataclass with one documented default."""

from __future__ import annotations

import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["DEFAULT_CONFIG", "Config"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """How a :class:`~ppacer.scheduler.Scheduler` behaves."""

    # DAG runs created but not yet picked up by the task scheduler. When full,
    # the DAG-run watcher waits: runs are delayed, in order, never dropped.
    # (Room for every DAG of a large deployment coming due at the same minute: 10,000
    # one-task DAGs due at once were all created within 0.2 s, BENCHMARKS.md.)
    dag_run_queue_len: int = 16384
    # Longest a single `GET /dag/task/pop?wait_s=` long poll may wait, in seconds.
    max_pop_wait_s: float = 30.0
    # Longest the DAG-run watcher sleeps before looking at the clock again, in
    # seconds. It wakes earlier when a run is due; this only bounds the effect
    # of a wall-clock jump.
    max_watch_sleep_s: float = 1.0
    # IANA timezone used to display times (storage is always UTC).
    timezone: str = "UTC"
    # An executor must renew the lease on each task it runs (heartbeat) within
    # this many seconds, or the task is failed as "executor lost" and retried
    # per its config. Executors heartbeat every third of it.
    lease_timeout_s: float = 30.0
    # Slack past a task's own timeout before the scheduler fails an attempt the
    # executor has not reported (the executor itself stops it at the timeout).
    timeout_grace_s: float = 10.0
    # When set, API calls and the web UI must present this token
    # (``Authorization: Bearer <token>``; the UI asks for it on a login page).
    api_token: str | None = None
    # Largest request body the API accepts, in bytes (a larger one is a 413, read no
    # further). Task outputs, parameters and batches of reports fit well within it.
    max_request_bytes: int = 4 * 1024 * 1024
    # Bring the databases' schema up to this ppacer's on start (Alembic migrations,
    # serialised between schedulers). False: refuse an older schema and say which
    # command upgrades it (`ppacer db upgrade`); for deploys that migrate apart.
    upgrade_db: bool = True
    # Longest a write waits for the database (a lock, a connection), in seconds. Past
    # it the database counts as unavailable: the write is answered "retry" (503) and
    # retried with back-off off the event loop, which never waits longer than this.
    db_wait_s: float = 1.0
    # Longest task log message stored, in characters; a longer one is cut and says so.
    max_log_message_chars: int = 64 * 1024
    # After a restart or a takeover, how long an attempt found RUNNING waits for its
    # executor's heartbeat (the executor may be alive and still running it) before it is
    # queued again, in seconds. None: a third of lease_timeout_s plus 2 s (executors
    # heartbeat every third). `ppacer run`, whose executor dies with it, uses 0.
    recovery_grace_s: float | None = None
    # PostgreSQL, several schedulers: the leader's lease, in seconds (by the database's
    # clock). The leader renews it every quarter of it; a standby takes over once it
    # lapsed: a dead leader is replaced within about this plus ``standby_poll_s``.
    leader_lease_s: float = 3.0
    # How often a standby looks whether the leader's lease lapsed, in seconds.
    standby_poll_s: float = 0.5
    # This scheduler's API as others reach it (``http://host:port``): standbys forward
    # calls to the leader's. ``ppacer scheduler`` sets it from --host/--port.
    advertise_url: str | None = None
    # Executors' long polls (``GET /dag/task/pop?wait_s=`` with wait_s > 0) waiting at
    # once, at most (a count). One past it is answered 503 "too many long polls" at
    # once; executors treat that as "unavailable" and poll again with back-off.
    max_long_polls: int = 512
    # HTTP connections the server keeps open at once, at most (a count; capped below
    # the process's open-file limit). Requests on connections past it are answered 503.
    max_connections: int = 1024
    # Longest a client may take to send one whole request, headers and body, in
    # seconds, counted from when it connected or began the request; past it the
    # connection is closed. An idle kept-alive connection is closed after 5 s.
    request_timeout_s: float = 30.0
    # Finished DAG runs (SUCCESS, FAILED) whose status last changed more than this many
    # days ago are deleted, with their task attempts, errors, outputs, events and task
    # logs, by a loop of the leading scheduler (``ppacer prune`` does it by hand).
    # None: keep everything. Unfinished runs are never deleted.
    retention_days: float | None = None
    # How often the retention loop looks for runs to delete, in seconds.
    retention_interval_s: float = 3600.0
    # Runs deleted per transaction by retention (a count): bounds how long one
    # transaction holds the database's write lock.
    retention_batch: int = 100

    def __post_init__(self) -> None:
        for name in (
            "max_pop_wait_s",
            "max_watch_sleep_s",
            "lease_timeout_s",
            "timeout_grace_s",
            "db_wait_s",
            "leader_lease_s",
            "standby_poll_s",
            "request_timeout_s",
            "retention_interval_s",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"Config.{name} must be a finite number, got {value!r}")
        if self.dag_run_queue_len < 1:
            raise ValueError(f"Config.dag_run_queue_len must be >= 1, got {self.dag_run_queue_len}")
        if self.max_request_bytes < 1024:
            raise ValueError(
                f"Config.max_request_bytes must be >= 1024, got {self.max_request_bytes}"
            )
        if self.max_log_message_chars < 100:
            raise ValueError(
                f"Config.max_log_message_chars must be >= 100, got {self.max_log_message_chars}"
            )
        if self.recovery_grace_s is not None and not (
            math.isfinite(self.recovery_grace_s) and self.recovery_grace_s >= 0
        ):
            raise ValueError(
                f"Config.recovery_grace_s must be >= 0 or None, got {self.recovery_grace_s}"
            )
        if not self.leader_lease_s >= 1:
            raise ValueError(f"Config.leader_lease_s must be >= 1, got {self.leader_lease_s}")
        if not 0 < self.standby_poll_s <= self.leader_lease_s:
            raise ValueError(
                "Config.standby_poll_s must be > 0 and <= leader_lease_s, "
                f"got {self.standby_poll_s}"
            )
        if not self.db_wait_s > 0:
            raise ValueError(f"Config.db_wait_s must be > 0, got {self.db_wait_s}")
        if self.max_pop_wait_s < 0:
            raise ValueError(f"Config.max_pop_wait_s must be >= 0, got {self.max_pop_wait_s}")
        if self.max_watch_sleep_s <= 0:
            raise ValueError(f"Config.max_watch_sleep_s must be > 0, got {self.max_watch_sleep_s}")
        if self.lease_timeout_s <= 0:
            raise ValueError(f"Config.lease_timeout_s must be > 0, got {self.lease_timeout_s}")
        if self.timeout_grace_s < 0:
            raise ValueError(f"Config.timeout_grace_s must be >= 0, got {self.timeout_grace_s}")
        if self.max_long_polls < 1:
            raise ValueError(f"Config.max_long_polls must be >= 1, got {self.max_long_polls}")
        if self.max_connections < 16:
            raise ValueError(f"Config.max_connections must be >= 16, got {self.max_connections}")
        if not self.request_timeout_s > 0:
            raise ValueError(f"Config.request_timeout_s must be > 0, got {self.request_timeout_s}")
        if self.retention_days is not None and not (
            isinstance(self.retention_days, int | float)
            and math.isfinite(self.retention_days)
            and self.retention_days > 0
        ):
            raise ValueError(
                f"Config.retention_days must be > 0 or None, got {self.retention_days}"
            )
        if not self.retention_interval_s > 0:
            raise ValueError(
                f"Config.retention_interval_s must be > 0, got {self.retention_interval_s}"
            )
        if self.retention_batch < 1:
            raise ValueError(f"Config.retention_batch must be >= 1, got {self.retention_batch}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"Config.timezone: unknown IANA timezone {self.timezone!r}") from None


#: The default configuration.
DEFAULT_CONFIG = Config()
