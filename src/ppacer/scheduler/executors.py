"""What executors send besides reports: who they are (registrations) and their task logs."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from ppacer.api.checked import Registration
from ppacer.api.models import PROTOCOL_VERSION, LogRecord
from ppacer.dag.dag import Registry
from ppacer.db import dagruns as runs_db
from ppacer.db.tasklogs import insert_shipped_logs
from ppacer.errors import ConflictError
from ppacer.scheduler.dbgate import describe, is_full
from ppacer.scheduler.routing import Capability
from ppacer.scheduler.task_scheduler import TaskScheduler

__all__ = ["LogDrops", "LogsStored", "Registered", "register", "store_logs"]

log = logging.getLogger("ppacer.scheduler")


@dataclass(frozen=True, slots=True)
class Registered:
    """What an executor's registration found: tasks it lacks, tasks it has other code for."""

    missing: list[str]
    mismatched: list[str]


@dataclass(frozen=True, slots=True)
class LogsStored:
    """What became of a batch of shipped log records."""

    stored: int
    duplicates: int
    # (index in the batch, why it was refused)
    rejected: list[tuple[int, str]]


def register(
    tasks: TaskScheduler, registry: Registry, registration: Registration, version: str
) -> Registered:
    """Record what an executor serves and has (see :mod:`ppacer.scheduler.routing`).

    A newer protocol than this scheduler's is a :class:`ConflictError` naming both.
    """
    if registration.protocolVersion > PROTOCOL_VERSION:
        raise ConflictError(
            f"protocolVersion: the executor speaks protocol {registration.protocolVersion}, "
            f"this scheduler ({version}) protocol {PROTOCOL_VERSION}: upgrade the scheduler"
        )
    capability = Capability(
        queues=frozenset(registration.queues),
        versions={dag: dict(tasks_) for dag, tasks_ in registration.versions.items()},
        retained={
            dag: {task: frozenset(held) for task, held in tasks_.items()}
            for dag, tasks_ in registration.retained.items()
        },
        labels=dict(registration.labels),
    )
    tasks.router.register(registration.executor, capability, registration.ppacerVersion)
    missing, mismatched = [], []
    for dag in registry.values():
        have = registration.versions.get(dag.id, {})
        for info in dag.tasks.values():
            if info.config.queue not in capability.queues:
                continue
            if info.task_id not in have:
                missing.append(f"{dag.id}/{info.task_id}")
            elif have[info.task_id] != info.code_version:
                mismatched.append(f"{dag.id}/{info.task_id}")
    log.info(
        "executor %s registered: queues %s, %d task(s) it lacks, %d with other code",
        registration.executor,
        ",".join(sorted(capability.queues)),
        len(missing),
        len(mismatched),
    )
    if mismatched:
        log.warning(
            "executor %s has other code for %d task(s), e.g. %s: it is not handed those",
            registration.executor,
            len(mismatched),
            mismatched[0],
        )
    return Registered(missing, mismatched)


def store_logs(
    engine: Engine,
    logs_engine: Engine | None,
    registry: Registry,
    records: Sequence[LogRecord],
    drops: LogDrops,
    *,
    max_message_chars: int,
) -> LogsStored:
    """Store shipped log records of known runs, each once; refuse the others by index.

    A message longer than ``max_message_chars`` is cut and says so.
    """
    if logs_engine is None:
        raise ConflictError("this scheduler keeps no task logs (it has no logs DB)")
    limit = max_message_chars
    rejected: list[tuple[int, str]] = []
    rows = []
    runs: dict[tuple[str, str], bool] = {}
    with engine.connect() as conn:
        for i, r in enumerate(records):
            if r.dag_id not in registry:
                rejected.append((i, f"dagId: unknown DAG {r.dag_id!r}"))
                continue
            key = (r.dag_id, r.exec_ts)
            if key not in runs:
                runs[key] = runs_db.read_dag_run_by_exec(conn, *key) is not None
            if not runs[key]:
                rejected.append((i, f"execTs: DAG {r.dag_id!r} has no run at {r.exec_ts}"))
                continue
            message = r.message
            if len(message) > limit:
                message = f"{message[:limit]} [cut: {len(message) - limit} more characters]"
            rows.append(
                {
                    "DagId": r.dag_id,
                    "ExecTs": r.exec_ts,
                    "TaskId": r.task_id,
                    "Retry": r.retry,
                    "InsertTs": r.insert_ts,
                    "Level": r.level,
                    "Message": message,
                    "Attributes": json.dumps(r.attributes, default=str),
                    "Seq": r.seq,
                }
            )
    if not rows:
        return LogsStored(0, 0, rejected)
    try:
        with logs_engine.begin() as conn:
            stored = insert_shipped_logs(conn, rows)
    except DBAPIError as exc:
        if not is_full(exc):
            raise  # locked, connections away: 503, the executor keeps the lines and resends
        # A SQLite connection whose shared-memory file could not grow keeps failing ("disk
        # I/O error") after space is back: the next batch opens new connections.
        logs_engine.dispose()
        why = drops.dropped(len(rows), exc)
        kept = {i for i, _ in rejected}
        dropped = [i for i in range(len(records)) if i not in kept]
        return LogsStored(0, 0, sorted([*rejected, *((i, why) for i in dropped)]))
    drops.stored()
    return LogsStored(stored, len(rows) - stored, rejected)


class LogDrops:
    """Log lines the logs DB could not store (it was full) since the scheduler started
    (``total``), and whether it is failing now; one per scheduler."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.total = 0
        self.since: int | None = None  # the total when the current spell began

    def dropped(self, n: int, exc: BaseException) -> str:
        reason = describe(exc)
        with self.lock:
            self.total += n
            first = self.since is None
            if first:
                self.since = self.total - n
        if first:
            log.error(
                "task logs DB full (%s): log lines it cannot store are dropped and counted "
                "(ppacer_task_log_lines_dropped_total); the tasks go on",
                reason,
            )
        return f"not stored: the task logs DB is full ({reason}); the line was dropped"

    def stored(self) -> None:
        if self.since is None:
            return
        with self.lock:
            since, self.since = self.since, None
            if since is None:
                return
            lost = self.total - since
        log.warning("task logs DB stores lines again; %d line(s) were dropped while full", lost)
