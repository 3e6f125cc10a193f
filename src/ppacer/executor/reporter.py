"""Status reports to the scheduler: retried while it is unreachable, never dropped.

Final reports (SUCCESS, FAILED) are queued by the worker threads and sent by
one reporter thread, several per request (``Client.report_many``) when they
pile up, so a worker is free for its next attempt as soon as its task
returns. RUNNING reports are sent by the worker itself (:meth:`Reporter.send`):
its task must not start before the scheduler has taken it. A report is
retried with back-off while the scheduler cannot be reached; only the stop
deadline (:meth:`Reporter.give_up`) ends the retries. A report the scheduler
refuses (409: a stale lease, an illegal transition) is logged, not retried.
While a final report waits, its lease is still heartbeated (:meth:`Reporter.pending_tokens`):
the scheduler does not take the attempt back because its report is late.
"""

from __future__ import annotations

import logging
import queue
import threading

from ppacer.api.client import Client
from ppacer.api.models import StatusReport, TaskToExec
from ppacer.backoff import Backoff
from ppacer.errors import ConflictError, InvalidInputError, NotFoundError, ProtocolError
from ppacer.executor.attempt import describe, log_ids
from ppacer.timeutils import monotonic

__all__ = ["Reporter"]

log = logging.getLogger("ppacer.executor")

#: Most reports sent in one request.
MAX_BATCH = 200


class Reporter:
    """Delivers :class:`StatusReport` s: queued finals from its thread, others inline."""

    def __init__(self, client: Client, name: str) -> None:
        self._client = client
        self._name = name
        self._queue: queue.SimpleQueue[StatusReport | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # Set at the stop deadline: a report that fails then is given up, not retried.
        self._give_up = threading.Event()
        # Batches until the scheduler says it has no batch endpoint (the original's).
        self._batch = True
        # Reports with a pop (deliver_and_take) until the scheduler says it has none.
        self._chain = True
        # An outage is logged once, when the first report fails (threads race benignly).
        self._failing = False
        # Lease tokens of final reports queued and not delivered yet (counted).
        self._pending: dict[str, int] = {}
        self._pending_lock = threading.Lock()

    def start(self) -> None:
        """Start the reporter thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._send_queued, name=f"ppacer-reporter-{self._name}", daemon=True
            )
            self._thread.start()

    def put(self, report: StatusReport) -> None:
        """Queue a final report; the reporter thread delivers it."""
        if report.lease_token is not None:
            with self._pending_lock:
                self._pending[report.lease_token] = self._pending.get(report.lease_token, 0) + 1
        self._queue.put(report)

    def pending_tokens(self) -> list[str]:
        """Lease tokens of final reports not delivered yet (their leases still need heartbeats)."""
        with self._pending_lock:
            return list(self._pending)

    def _settled(self, batch: list[StatusReport]) -> None:
        with self._pending_lock:
            for report in batch:
                token = report.lease_token
                if token is not None and token in self._pending:
                    self._pending[token] -= 1
                    if not self._pending[token]:
                        del self._pending[token]

    def give_up(self) -> None:
        """Stop retrying: a report that fails from now on is logged and dropped."""
        self._give_up.set()

    def stop(self, deadline: float) -> None:
        """Send what is queued, retrying until ``deadline`` (monotonic), then end the thread."""
        if self._thread is None:
            return
        self._queue.put(None)
        # At least a second for what was queued last, even past the deadline.
        self._thread.join(max(1.0, deadline - monotonic()))
        if self._thread.is_alive():
            self.give_up()
            self._thread.join(5.0)

    def deliver_and_take(
        self, report: StatusReport, executor: str, max_n: int = 1
    ) -> list[TaskToExec] | None:
        """Deliver a final report and take up to ``max_n`` attempts, in one request.

        Returns the attempts taken, or None when the report was not delivered
        this way (the scheduler lacks the endpoint, or could not be reached):
        then queue it with :meth:`put`, which retries. A report the scheduler
        refused is logged, as :meth:`send` does.
        """
        if not self._chain:
            return None
        try:
            errors, tasks = self._client.report_and_pop([report], executor, max_n)
        except (NotFoundError, ProtocolError):
            log.info("the scheduler takes no report with a pop; reporting and polling apart")
            self._chain = False
            return None
        except Exception:
            return None
        if errors[0] is not None:
            _log_refused(report, errors[0])
        self._note_success()
        return tasks

    def send(self, report: StatusReport) -> bool:
        """Deliver ``report`` now, retrying while the scheduler is unreachable (blocks).

        Returns False when the scheduler refused it (4xx) or retries were given up.
        """
        backoff: Backoff | None = None
        while True:
            try:
                self._client.report(report)
            except (ConflictError, NotFoundError, InvalidInputError) as exc:
                _log_refused(report, exc)
                return False
            except Exception as exc:
                if self._give_up.is_set():
                    log.error(
                        "giving up reporting %s for %s: %s",
                        report.status,
                        describe(report),
                        exc,
                        extra=log_ids(report),
                    )
                    return False
                self._note_failure(f"{report.status} for {describe(report)}", exc)
                backoff = backoff or Backoff.exponential(first_s=0.05, cap_s=5.0)
                backoff.wait(self._give_up)
                continue
            self._note_success()
            return True

    def _send_queued(self) -> None:
        """The reporter thread: send queued reports, batching what has piled up."""
        while (first := self._queue.get()) is not None:
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            try:
                self._deliver(batch)
            finally:
                self._settled(batch)
            if stop:
                return

    def _deliver(self, batch: list[StatusReport]) -> None:
        if not self._batch or len(batch) == 1:
            for report in batch:
                self.send(report)
            return
        backoff: Backoff | None = None
        while True:
            try:
                errors = self._client.report_many(batch)
            except NotFoundError:
                log.info("the scheduler has no batch endpoint; reporting one status at a time")
                self._batch = False
                self._deliver(batch)
                return
            except Exception as exc:
                if self._give_up.is_set():
                    log.error("giving up reporting %d statuses: %s", len(batch), exc)
                    return
                self._note_failure(f"{len(batch)} statuses", exc)
                backoff = backoff or Backoff.exponential(first_s=0.05, cap_s=5.0)
                backoff.wait(self._give_up)
                continue
            self._note_success()
            break
        for report, error in zip(batch, errors, strict=True):
            if error is not None:
                _log_refused(report, error)

    def _note_failure(self, what: str, exc: Exception) -> None:
        if not self._failing:
            self._failing = True
            log.warning("cannot report %s (%s); retrying", what, exc)

    def _note_success(self) -> None:
        if self._failing:
            self._failing = False
            log.info("status reports go through again")


def _log_refused(report: StatusReport, error: Exception) -> None:
    log.warning(
        "scheduler refused %s for %s: %s",
        report.status,
        describe(report),
        error,
        extra=log_ids(report),
    )
