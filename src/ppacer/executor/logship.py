"""Task logs shipped to the scheduler over the API: the executor opens no database.

:class:`LogShipper` is a :class:`logging.Handler` on the executor's task
logger. Each record of a task attempt gets the attempt's next number
(``seq``, from 0) and joins a queue (:class:`~ppacer.executor.spool.SpoolQueue`:
memory, then a spool file past its bound); one shipper thread sends what is
queued in batches (``POST /dag/task/logs``), retrying with back-off while the
scheduler cannot be reached. A batch whose answer was lost is sent again: the
scheduler stores each (attempt, ``seq``) once, so records are delivered at
least once and stored once.

The task's thread only formats and queues a record; the network is the
shipper thread's. A task that logs nothing costs no request. Before an
attempt's final status is reported, :meth:`LogShipper.finish_attempt` waits
(bounded) until its records are delivered, so whoever follows the attempt's
log has every line by the time the attempt is finished.

Per attempt, lines longer than ``max_line_chars`` are cut (the line ends with
a note saying how much was cut) and lines past ``max_lines`` are not shipped
(one final record says how many).
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ppacer.api.client import Client
from ppacer.api.models import LogRecord
from ppacer.backoff import Backoff
from ppacer.errors import ConflictError, InvalidInputError, NotFoundError
from ppacer.executor.spool import SpoolQueue
from ppacer.timeutils import format_ts, monotonic

__all__ = ["DEFAULT_LOG_SHIPPING", "AttemptKey", "LogShipper", "LogShipping", "attempt_key"]

log = logging.getLogger("ppacer.executor")

#: An attempt's identity: DAG id, execTs, task id, retry.
AttemptKey = tuple[str, str, str, int]

#: Most records in one request (the scheduler takes up to 5,000).
MAX_BATCH_RECORDS = 2000
#: Most characters of message text in one request: a bounded request body.
MAX_BATCH_CHARS = 4 * 2**20
#: Most characters of message text held in memory before records spill to disk.
MAX_MEMORY_CHARS = 32 * 2**20
#: Finished attempts whose numbering is remembered (a stray thread may log late).
_REMEMBERED = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class LogShipping:
    """How task logs are shipped to the scheduler (settings ``executor.*``)."""

    # Records held in memory while undelivered; past it they spill to a file.
    buffer_records: int = 10_000
    # Directory of the spill files (None: a temporary directory).
    spool_dir: str | None = None
    # Characters kept of one log line (a longer one is cut, with a note).
    max_line_chars: int = 65_536
    # Lines shipped per attempt (the rest are counted in one final line).
    max_lines: int = 100_000
    # Longest wait, in seconds, for an attempt's lines to be delivered before
    # its final status is reported (the lines still go after it).
    final_wait_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("buffer_records", "max_line_chars", "max_lines"):
            if getattr(self, name) < 1:
                raise ValueError(f"LogShipping.{name} must be >= 1, got {getattr(self, name)}")
        if self.final_wait_s < 0:
            raise ValueError(f"LogShipping.final_wait_s must be >= 0, got {self.final_wait_s}")


#: The defaults.
DEFAULT_LOG_SHIPPING = LogShipping()


def attempt_key(dag_id: str, exec_ts: str, task_id: str, retry: int) -> AttemptKey:
    """The key of an attempt's numbering."""
    return (dag_id, exec_ts, task_id, retry)


@dataclass(slots=True)
class _Numbering:
    """One attempt's log: its next ``seq``, lines shipped and not, and its last queued record."""

    next_seq: int = 0
    lines: int = 0
    # Lines past max_lines, and lines the spool directory could not take.
    dropped: int = 0
    lost: int = 0
    # Position (in the shipper's queue order, from 1) of its last queued record; 0: none.
    last: int = 0


class LogShipper(logging.Handler):
    """Numbers, buffers and ships task log records to the scheduler (a shipper thread)."""

    def __init__(
        self, client: Client, executor: str, config: LogShipping = DEFAULT_LOG_SHIPPING
    ) -> None:
        super().__init__(logging.DEBUG)
        self.client = client
        self.executor = executor
        self.config = config
        self._cond = threading.Condition(threading.Lock())
        self._queue = SpoolQueue(
            max_records=config.buffer_records,
            max_chars=MAX_MEMORY_CHARS,
            spool_dir=config.spool_dir,
        )
        self._attempts: OrderedDict[AttemptKey, _Numbering] = OrderedDict()
        # Records queued and records handled (delivered, or given up), in queue order.
        self._queued = 0
        self._handled = 0
        self._thread: threading.Thread | None = None
        self._closing = False
        # Set to stop retrying: what is not delivered then is dropped.
        self._give_up = threading.Event()
        # Why records are not shipped at all (the scheduler keeps no logs); None: shipping.
        self._refused: str | None = None
        self._spool_failing = False
        #: Records stored by the scheduler, and those it had already (sent again).
        self.stored = 0
        self.duplicates = 0

    # ------------------------------------------------------------------ the task's side

    def emit(self, record: logging.LogRecord) -> None:
        """Number and queue ``record`` if it belongs to a task attempt (never blocks on I/O
        but a spill to disk)."""
        dag_id = getattr(record, "ppacer_dag_id", None)
        if dag_id is None:
            return
        try:
            key = attempt_key(
                dag_id,
                record.ppacer_exec_ts,  # type: ignore[attr-defined]
                record.ppacer_task_id,  # type: ignore[attr-defined]
                record.ppacer_retry,  # type: ignore[attr-defined]
            )
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            attrs = _jsonable(getattr(record, "ppacer_attrs", None) or {})
            insert_ts = format_ts(datetime.fromtimestamp(record.created, UTC))
            limit = self.config.max_line_chars
            with self._cond:
                numbering = self._numbering(key)
                if numbering.lines >= self.config.max_lines:
                    numbering.dropped += 1
                    return
                numbering.lines += 1
                if len(message) > limit:
                    cut = len(message) - limit
                    message = f"{message[:limit]} [cut: {cut} more characters]"
                self._put(key, numbering, insert_ts, record.levelname, message, attrs)
        except Exception:
            self.handleError(record)

    def start_attempt(self, key: AttemptKey, first_seq: int = 0) -> None:
        """Number the attempt's next records from ``first_seq`` on (or later, if it had more).

        Records another process numbered (a Dask worker's) are not numbered again.
        """
        with self._cond:
            numbering = self._numbering(key)
            numbering.next_seq = max(numbering.next_seq, first_seq)

    def finish_attempt(self, key: AttemptKey, wait_s: float | None = None) -> int:
        """Say what was not shipped, wait up to ``wait_s`` for the attempt's records to be
        delivered; return the attempt's next ``seq``.

        Returns at once when the attempt logged nothing (no request is made).
        """
        wait_s = self.config.final_wait_s if wait_s is None else wait_s
        with self._cond:
            numbering = self._attempts.get(key)
            if numbering is None:
                return 0
            if numbering.dropped or numbering.lost:
                self._put_note(key, numbering)
            target = numbering.last
            deadline = monotonic() + wait_s
            while self._handled < target and self._refused is None:
                remaining = deadline - monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return numbering.next_seq

    def drain(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` until everything queued is delivered; True if it was."""
        deadline = monotonic() + timeout_s
        with self._cond:
            while self._handled < self._queued and self._refused is None:
                remaining = deadline - monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self) -> None:
        """Nothing: ``logging.config.dictConfig`` closes every handler of the process (uvicorn
        calls it when it starts), and that must not end the shipping. See :meth:`shutdown`."""

    def shutdown(self) -> None:
        """Stop shipping (what is still queued is dropped; :meth:`drain` first to send it)."""
        with self._cond:
            self._closing = True
            dropped = self._queued - self._handled
            self._cond.notify_all()
        self._give_up.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
        with self._cond:
            self._queue.close()
        if dropped and self._refused is None:
            log.warning(
                "%d task log records were not delivered before the executor stopped", dropped
            )
        super().close()

    @property
    def pending(self) -> int:
        """Records queued and not delivered yet."""
        with self._cond:
            return self._queued - self._handled

    @property
    def spooled(self) -> int:
        """Records that ever went to the spool file."""
        with self._cond:
            return self._queue.spooled_total

    # ------------------------------------------------------------------ internals

    def _numbering(self, key: AttemptKey) -> _Numbering:
        numbering = self._attempts.get(key)
        if numbering is None:
            numbering = self._attempts[key] = _Numbering()
            if len(self._attempts) > _REMEMBERED:
                self._attempts.popitem(last=False)
        else:
            self._attempts.move_to_end(key)
        return numbering

    def _put_note(self, key: AttemptKey, numbering: _Numbering) -> None:
        """Queue the one record saying how many of the attempt's lines were not shipped."""
        reasons = []
        if numbering.dropped:
            reasons.append(
                f"{numbering.dropped} past the limit of {self.config.max_lines} lines per "
                "attempt (setting executor.max_log_lines)"
            )
        if numbering.lost:
            reasons.append(f"{numbering.lost} the spool directory could not take")
        count = numbering.dropped + numbering.lost
        note = f"{count} more lines of this attempt were not shipped: {'; '.join(reasons)}"
        now = format_ts(datetime.now(UTC))
        numbering.dropped = numbering.lost = 0
        self._put(key, numbering, now, "WARNING", note, {"linesNotShipped": count})

    def _put(
        self,
        key: AttemptKey,
        numbering: _Numbering,
        insert_ts: str,
        level: str,
        message: str,
        attrs: dict[str, Any],
    ) -> None:
        """Queue one record (under the lock); start the shipper thread on first use."""
        if self._refused is not None or self._closing:
            return
        record = LogRecord(*key, numbering.next_seq, insert_ts, level, message, attrs)
        try:
            self._queue.put(record)
        except OSError as exc:
            # A full or unwritable spool directory: count the line, say so once per spell.
            numbering.lost += 1
            if not self._spool_failing:
                self._spool_failing = True
                log.warning("cannot spool task log records (%s); they are counted, not kept", exc)
            return
        self._spool_failing = False
        numbering.next_seq += 1
        self._queued += 1
        numbering.last = self._queued
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._ship, name=f"ppacer-logship-{self.executor}", daemon=True
            )
            self._thread.start()
        self._cond.notify_all()

    def _ship(self) -> None:
        """The shipper thread: send what is queued, a batch at a time, until closed."""
        while True:
            with self._cond:
                while not len(self._queue) and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                batch = self._queue.take(MAX_BATCH_RECORDS, MAX_BATCH_CHARS)
            self._deliver(batch)
            with self._cond:
                # (A refusal while it was in flight has counted every record already.)
                self._handled = min(self._queued, self._handled + len(batch))
                self._cond.notify_all()

    def _deliver(self, batch: list[LogRecord]) -> None:
        """Send ``batch`` until the scheduler takes it (or refuses it, or we give up)."""
        backoff: Backoff | None = None
        while True:
            try:
                answer = self.client.ship_logs(self.executor, batch)
            except (ConflictError, NotFoundError) as exc:
                # No logs DB there (409), or no such endpoint (an older scheduler): for good.
                self._refuse(
                    f"the scheduler at {self.client.url} stores no shipped task logs: {exc}"
                )
                return
            except InvalidInputError as exc:
                log.warning("the scheduler refused %d task log records: %s", len(batch), exc)
                return
            except Exception as exc:
                if backoff is None:
                    log.warning("cannot ship task logs (%s); retrying", exc)
                    backoff = Backoff.exponential(first_s=0.05, cap_s=5.0)
                if backoff.wait(self._give_up):
                    return
                continue
            if backoff is not None:
                log.info("task logs are shipped again")
            self.stored += answer.stored
            self.duplicates += answer.duplicates
            if answer.rejected:
                first = answer.rejected[0]
                log.warning(
                    "the scheduler refused %d of %d task log records, e.g. #%d: %s",
                    len(answer.rejected),
                    len(batch),
                    first.index,
                    first.error,
                )
            return

    def _refuse(self, why: str) -> None:
        with self._cond:
            if self._refused is None:
                log.warning("%s; task log lines go to this executor's console only", why)
            self._refused = why
            self._handled = self._queued
            self._queue.close()
            self._cond.notify_all()


def _jsonable(attrs: dict[str, Any]) -> dict[str, Any]:
    """``attrs`` as JSON can carry them: values that are not JSON become their text."""
    if not attrs:
        return {}
    try:
        json.dumps(attrs, allow_nan=False)
        return attrs
    except (TypeError, ValueError):
        try:
            value = json.loads(json.dumps(attrs, default=str))
            json.dumps(value, allow_nan=False)
            return dict(value)
        except (TypeError, ValueError):
            return {str(k): str(v) for k, v in attrs.items()}
