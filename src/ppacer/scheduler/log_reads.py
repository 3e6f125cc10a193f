"""Task log reads: an attempt's lines page by page, and the search across runs.

Part of the read layer (:mod:`ppacer.scheduler.reads`, whose ``Reads`` is a
``LogReads``): log lines are read here and nowhere else, and text leaves here
as it may be shown, URL passwords and the scheduler's own secrets masked.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Engine

from ppacer.dag.dag import Registry
from ppacer.dag.status import TaskStatus
from ppacer.db import dagruns as runs_db
from ppacer.db import dagruntasks as tasks_db
from ppacer.db import logsearch
from ppacer.db.tasklogs import TaskLogLine, read_task_log_lines
from ppacer.errors import InvalidInputError, NotFoundError
from ppacer.redact import MASK, redact_urls
from ppacer.timeutils import format_ts, parse_ts

__all__ = [
    "FoundLogLine",
    "LogPage",
    "LogReads",
    "LogSearchResult",
    "attempt_over",
    "redact_log_text",
]


def attempt_over(status: TaskStatus) -> bool:
    """Whether an attempt has ended (a failed one waiting for a retry has: retries are new rows)."""
    return status.is_terminal or status is TaskStatus.FAILED_PENDING_RETRY


def redact_log_text(text: str, secrets: Collection[str] = ()) -> str:
    """Log text as it may be shown: URL passwords and each of ``secrets`` masked.

    ``secrets`` are the scheduler's own (its API token): a task that logged one
    must not hand it to whoever reads its logs.
    """
    shown = redact_urls(text)
    for secret in secrets:
        if secret and secret in shown:
            shown = shown.replace(secret, MASK)
    return shown


@dataclass(frozen=True, slots=True)
class LogPage:
    """Log lines of one attempt from ``offset`` on, and whether more may come."""

    run: runs_db.DagRunRow
    task_id: str
    retry: int
    latest_retry: int
    # Every retry number the task has in the run, in order.
    retries: tuple[int, ...]
    # NO_STATUS: the attempt does not exist (yet).
    status: TaskStatus
    offset: int
    lines: list[TaskLogLine]
    # False when this scheduler has no logs DB (lines are then always empty).
    has_logs_db: bool

    @property
    def finished(self) -> bool:
        """The attempt's status is final: no more lines come."""
        return attempt_over(self.status)

    @property
    def next_offset(self) -> int:
        """The offset to ask from next."""
        return self.offset + len(self.lines)


@dataclass(frozen=True, slots=True)
class FoundLogLine:
    """A log line a search found, as it may be shown (message redacted)."""

    # None: no run of this DAG at this logical time (its row was removed, or another DB's).
    run_id: int | None
    dag_id: str
    # The run's logical time in stored form.
    exec_ts: str
    task_id: str
    retry: int
    # Its line number in the attempt's log, from 0 (the log view's ``#L<line>`` anchor).
    line: int
    insert_ts: str
    level: str
    message: str


@dataclass(frozen=True, slots=True)
class LogSearchResult:
    """A page of log search hits, newest first; ``has_more``: a next page has hits."""

    lines: list[FoundLogLine]
    has_more: bool
    # False when the scheduler keeps no logs DB (nothing is ever found).
    has_logs_db: bool = True


class LogReads:
    """Reads of task logs (``Reads`` is one: it provides ``run``)."""

    engine: Engine
    logs_engine: Engine | None
    registry: Registry

    def run(self, run_id: int) -> runs_db.DagRunRow:
        """The run, or :class:`NotFoundError` (see ``Reads.run``)."""
        raise NotImplementedError

    def log_page(
        self, run_id: int, task_id: str, retry: int | None, *, offset: int = 0, limit: int = 1000
    ) -> LogPage:
        """Log lines of an attempt (the latest unless ``retry``) from ``offset`` on.

        A task the run neither has nor will have is a :class:`NotFoundError`;
        so is a ``retry`` the task has no attempt of (once it has any).
        """
        run = self.run(run_id)
        with self.engine.connect() as conn:
            rows = tasks_db.read_task_attempts(conn, run.dag_id, run.exec_ts, task_id)
        dag = self.registry.get(run.dag_id)
        if not rows and (dag is None or task_id not in dag.tasks):
            raise NotFoundError(f"taskId: DAG run {run_id} has no task {task_id!r}")
        latest = rows[-1].retry if rows else 0
        wanted = latest if retry is None else retry
        attempt = next((a for a in rows if a.retry == wanted), None)
        if attempt is None and retry is not None and rows:
            raise NotFoundError(f"retry: task {task_id!r} has no attempt {retry}")
        lines = []
        if attempt is not None:
            lines = self.log_lines(run, task_id, wanted, offset=offset, limit=limit)
        return LogPage(
            run=run,
            task_id=task_id,
            retry=wanted,
            latest_retry=latest,
            retries=tuple(a.retry for a in rows),
            status=attempt.status if attempt is not None else TaskStatus.NO_STATUS,
            offset=offset,
            lines=lines,
            has_logs_db=self.logs_engine is not None,
        )

    def log_lines(
        self,
        run: runs_db.DagRunRow,
        task_id: str,
        retry: int,
        *,
        offset: int = 0,
        limit: int = 1000,
    ) -> list[TaskLogLine]:
        """Log lines of an attempt in the order they were written (none without a logs DB)."""
        if self.logs_engine is None:
            return []
        with self.logs_engine.connect() as conn:
            return read_task_log_lines(
                conn, run.dag_id, run.exec_ts, task_id, retry, offset=offset, limit=limit
            )

    def search_logs(
        self,
        query: str,
        *,
        dag_id: str | None = None,
        task_id: str | None = None,
        min_level: str | None = None,
        from_ts: str | None = None,
        to_ts: str | None = None,
        limit: int = 50,
        offset: int = 0,
        secrets: Collection[str] = (),
    ) -> LogSearchResult:
        """Log lines matching ``query`` (see :mod:`ppacer.db.logsearch`), newest first, each
        with its run and line number, messages redacted (URL passwords, ``secrets``).

        Lines logged in ``[from_ts, to_ts)`` (stored timestamps) at ``min_level`` or
        above, of a DAG and a task if given. A query without a word (letters or
        digits) is an :class:`InvalidInputError`.
        """
        terms = logsearch.parse_query(query)
        if not terms:
            raise InvalidInputError(f"q: no words to search for in {query!r} (letters or digits)")
        if min_level is not None and min_level.upper() not in logsearch.LEVEL_RANK:
            raise InvalidInputError(
                f"level: one of {', '.join(logsearch.LEVEL_RANK)}, got {min_level!r}"
            )
        filters = logsearch.LogFilters(dag_id, task_id, min_level, from_ts, to_ts)
        if self.logs_engine is None:
            return LogSearchResult([], False, has_logs_db=False)
        with self.logs_engine.connect() as conn:
            page = logsearch.search_logs(conn, terms, filters, limit=limit, offset=offset)
            stored = {hit: _stored_ts(hit.exec_ts) for hit in page.hits}
            lines = [logsearch.line_position(conn, hit, stored[hit]) for hit in page.hits]
        with self.engine.connect() as conn:
            run_ids = runs_db.read_run_ids_by_exec(
                conn, {(hit.dag_id, ts) for hit, ts in stored.items()}
            )
        found = [
            FoundLogLine(
                run_ids.get((hit.dag_id, stored[hit])),
                hit.dag_id,
                stored[hit],
                hit.task_id,
                hit.retry,
                line,
                hit.insert_ts,
                hit.level,
                redact_log_text(hit.message, secrets),
            )
            for hit, line in zip(page.hits, lines, strict=True)
        ]
        return LogSearchResult(found, page.has_more)


def _stored_ts(text: str) -> str:
    """A timestamp as stored by this ppacer (rows of the original's executor trim it)."""
    try:
        return format_ts(parse_ts(text))
    except ValueError:
        return text
