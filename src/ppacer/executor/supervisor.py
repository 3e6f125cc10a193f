"""Watching running attempts: heartbeats for their leases, timeouts, lost leases.

One thread, which sleeps until the next heartbeat or the next attempt's
deadline, whichever comes first. Heartbeats renew the leases of the attempts
that run (not of those past their timeout, so a stuck task does not look
alive) at the pace of the shortest lease - a third of it - and at least every
:data:`RUN_DEADLINE_HEARTBEAT_S` while an attempt of a DAG with a run deadline
runs: a lease the scheduler took back (the run was failed, the lease expired)
is how the executor learns to stop an attempt. A heartbeat that fails is
retried with back-off, never later than the regular pace.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

from ppacer.api.client import Client
from ppacer.api.models import StatusReport, TaskToExec
from ppacer.backoff import Backoff
from ppacer.dag.status import TaskStatus
from ppacer.dag.task import TaskConfig
from ppacer.errors import SchedulerUnavailableError
from ppacer.executor.attempt import Attempt, describe, log_ids
from ppacer.executor.reporter import Reporter
from ppacer.timeutils import monotonic

__all__ = ["RUN_DEADLINE_HEARTBEAT_S", "Supervisor"]

log = logging.getLogger("ppacer.executor")

#: Longest gap between heartbeats, in seconds, while an attempt of a DAG with a
#: ``run_timeout_s`` runs: the heartbeat is how the executor learns that the run
#: was failed by its deadline (its lease is gone) and stops the task.
RUN_DEADLINE_HEARTBEAT_S = 2.0

#: Heartbeat pace, in seconds, before any attempt has said how long its lease is.
DEFAULT_HEARTBEAT_S = 10.0


class Supervisor:
    """Heartbeats the leases of running attempts, times them out, stops those that lost one."""

    def __init__(
        self,
        client: Client,
        name: str,
        reporter: Reporter,
        *,
        capacity: int,
        running: Callable[[], int],
    ) -> None:
        self._client = client
        self._name = name
        self._reporter = reporter
        self._capacity = capacity
        self._running = running
        # Attempts running now: added and removed by worker threads under the lock of _wake.
        self._attempts: set[Attempt] = set()
        self._wake = threading.Condition(threading.Lock())
        # Set (under _wake's lock) when something the next wait is planned by changed
        # while a pass ran, e.g. during a heartbeat: that wait is skipped, not missed
        # (missed, a new short lease waited for the old pace and expired under load).
        self._dirty = False
        # While the thread waits: until when, and the heartbeat interval it planned by
        # (None while a pass runs). An attempt that needs it sooner wakes it; others
        # do not, so most attempts start without waking this thread.
        self._waiting_until: float | None = None
        self._waiting_interval = math.inf
        self._stopping = False
        # abandon() waits for the attempts it stopped to end.
        self._abandoning = False
        self._thread: threading.Thread | None = None
        # A third of the last lease an attempt came with: the pace with no attempts.
        self._pace_s = DEFAULT_HEARTBEAT_S
        self._retry = Backoff.exponential(first_s=0.05, cap_s=DEFAULT_HEARTBEAT_S)
        # Seconds until a failed heartbeat is tried again (None: it went through).
        self._retry_s: float | None = None
        # A failing heartbeat was logged (once until one goes through).
        self._warned = False

    def start(self) -> None:
        """Start the supervisor thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._supervise, name=f"ppacer-supervisor-{self._name}", daemon=True
            )
            self._thread.start()

    def watch(
        self,
        task: TaskToExec,
        config: TaskConfig,
        *,
        has_run_deadline: bool,
        grace_s: float = 0.0,
    ) -> Attempt:
        """Start watching an attempt that is about to run; return its shared state.

        ``grace_s`` lengthens its deadline (and so its heartbeats) past the
        timeout: for an attempt that may wait before it starts (on a Dask
        cluster) and enforces its timeout where it runs.
        """
        if task.lease_timeout_s:
            self._pace_s = max(0.05, task.lease_timeout_s / 3)
        heartbeat_s = self._pace_s
        if has_run_deadline:
            heartbeat_s = min(heartbeat_s, RUN_DEADLINE_HEARTBEAT_S)
        attempt = Attempt(task, config, monotonic() + config.timeout_s + grace_s, heartbeat_s)
        with self._wake:
            self._attempts.add(attempt)
            if (
                self._waiting_until is None
                or attempt.deadline < self._waiting_until
                or heartbeat_s < self._waiting_interval
            ):
                # Its deadline or lease needs the thread sooner than planned (or the
                # plan is being made): plan again.
                self._dirty = True
                self._wake.notify_all()
        return attempt

    def forget(self, attempt: Attempt) -> None:
        """Stop watching ``attempt`` (it has ended)."""
        with self._wake:
            self._attempts.discard(attempt)
            # Only abandon() waits for attempts to end; the supervisor thread is not
            # woken for each one (a wake-up planned for it finds nothing to do).
            if self._abandoning:
                self._wake.notify_all()

    def abandon(self, reason: str, wait_s: float = 5.0) -> None:
        """Stop every attempt for ``reason``; wait up to ``wait_s`` for those that can stop.

        Child processes are killed and coroutines cancelled (their runners report
        them FAILED). A thread cannot be stopped: its attempt is left RUNNING for
        the scheduler (a restart queues it again, a lost lease retries it), and
        its late result, if any, is dropped.
        """
        with self._wake:
            self._abandoning = True
            attempts = list(self._attempts)
        stoppable = []
        for attempt in attempts:
            attempt.stop(reason)
            if attempt.is_stoppable:
                stoppable.append(attempt)
            elif attempt.claim():
                log.warning(
                    "%s is still running in its thread; left RUNNING for the scheduler",
                    describe(attempt.task),
                    extra=log_ids(attempt.task),
                )
        with self._wake:
            self._wake.wait_for(
                lambda: not any(a in self._attempts for a in stoppable), timeout=wait_s
            )

    def stop(self) -> None:
        """End the supervisor thread (its attempts have ended or been abandoned)."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def _supervise(self) -> None:
        """Heartbeat leases and enforce timeouts, waking only when one of them is due."""
        last_beat = -math.inf
        while True:
            with self._wake:
                if self._stopping:
                    return
                self._dirty = False
                self._waiting_until = None
                attempts = [a for a in self._attempts if not a.done]
            # Counted from the last beat each time round: an attempt with a shorter
            # lease (or a run deadline) than any before moves the next beat earlier.
            interval = min([self._pace_s, *(a.heartbeat_s for a in attempts)])
            if monotonic() >= last_beat + self._gap(interval):
                self._heartbeat()
                last_beat = monotonic()
            for attempt in attempts:
                if not attempt.done and monotonic() >= attempt.deadline:
                    self._timed_out(attempt)
            wake = min(
                [*(a.deadline for a in attempts if not a.done), last_beat + self._gap(interval)]
            )
            with self._wake:
                # watch() and stop() notify under this lock; one that came while this
                # pass ran (a heartbeat in flight) makes it go round again at once.
                if not self._stopping and not self._dirty:
                    self._waiting_until = wake
                    self._waiting_interval = interval
                    self._wake.wait(max(0.0, wake - monotonic()))

    def _gap(self, interval: float) -> float:
        """Seconds from the last heartbeat to the next: sooner while retrying a failed one."""
        return interval if self._retry_s is None else min(interval, self._retry_s)

    def _heartbeat(self) -> None:
        now = monotonic()
        with self._wake:
            attempts = list(self._attempts)
        tokens = {
            a.task.lease_token: a
            for a in attempts
            if a.task.lease_token is not None and not a.done and now < a.deadline
        }
        # Attempts that ended but whose final report waits keep their leases too.
        waiting = [t for t in self._reporter.pending_tokens() if t not in tokens]
        try:
            lost = self._client.heartbeat(
                self._name,
                [*tokens, *waiting],
                running=self._running(),
                capacity=self._capacity,
            )
        except SchedulerUnavailableError as exc:
            log.debug("heartbeat failed: %s", exc)  # the poll loop says it is unreachable
            self._retry_s = self._retry.next_s()
            return
        except Exception as exc:
            # Leases run out if this goes on: say so (once until a heartbeat goes through).
            if not self._warned:
                log.warning("heartbeat to %s failed: %r", self._client.url, exc)
                self._warned = True
            self._retry_s = self._retry.next_s()
            return
        if self._warned:
            log.warning("heartbeats to %s go through again", self._client.url)
            self._warned = False
        self._retry.reset()
        self._retry_s = None
        for token in lost:
            attempt = tokens.get(token)
            if attempt is not None and attempt.claim():
                log.warning(
                    "lease lost on %s (the scheduler failed it); stopping it",
                    describe(attempt.task),
                    extra=log_ids(attempt.task),
                )
                attempt.stop("executor lost its lease")

    def _timed_out(self, attempt: Attempt) -> None:
        if attempt.is_stoppable:
            return  # a child process or a coroutine: stopped and reported by its runner
        if not attempt.claim():
            return
        error = (
            f"TimeoutError: task {attempt.task.task_id!r} ran past its timeout of "
            f"{attempt.config.timeout_s:g} s (it keeps its worker thread until it returns; "
            f"use isolation='process' to have it killed)"
        )
        log.warning("%s: %s", describe(attempt.task), error, extra=log_ids(attempt.task))
        self._reporter.put(StatusReport.for_task(attempt.task, TaskStatus.FAILED, error))
