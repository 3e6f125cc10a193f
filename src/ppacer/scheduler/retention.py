"""The retention loop: the leading scheduler deletes finished runs past ``Config.retention_days``.

Every ``Config.retention_interval_s`` (the first pass a little after start) it
runs :func:`ppacer.db.retention.prune` in a worker thread, in batches of
``Config.retention_batch`` runs, then gives freed SQLite pages back to the file
system (:func:`~ppacer.db.retention.give_space_back`). The event loop never
waits for it; scheduling goes on between and during batches (each batch is one
short transaction). A pass is skipped while the database is unavailable (the
gate is closed), and an error ends the pass, logged, not the loop: the next
pass tries again. Stopping the scheduler stops a pass between two batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from datetime import timedelta
from typing import Protocol

from sqlalchemy import Engine

from ppacer.db.retention import PruneResult, give_space_back, prune
from ppacer.scheduler.config import Config
from ppacer.scheduler.dbgate import DatabaseGate, describe
from ppacer.timeutils import Clock, format_ts

__all__ = ["FIRST_PASS_AFTER_S", "RetentionHost", "retention_loop", "run_pass"]

log = logging.getLogger("ppacer.scheduler")

#: Seconds after start before the first pass (start-up and recovery go first).
FIRST_PASS_AFTER_S = 5.0
# Longest a stopping scheduler waits for the batch in progress, in seconds.
_STOP_WAIT_S = 30.0


class RetentionHost(Protocol):
    """What the loop needs of the scheduler (:class:`~ppacer.scheduler.core.SchedulerCore`)."""

    config: Config
    engine: Engine
    logs_engine: Engine | None
    clock: Clock
    gate: DatabaseGate


def run_pass(host: RetentionHost, stop: threading.Event | None = None) -> PruneResult | None:
    """One retention pass (blocking: call it in a worker thread); None when retention is off."""
    days = host.config.retention_days
    if days is None:
        return None
    cutoff = format_ts(host.clock.now() - timedelta(days=days))
    result = prune(
        host.engine, host.logs_engine, cutoff, batch=host.config.retention_batch, stop=stop
    )
    if result.runs and not result.stopped:
        engines = [host.engine]
        if host.logs_engine is not None and host.logs_engine.url != host.engine.url:
            engines.append(host.logs_engine)
        result.space = [give_space_back(engine, stop) for engine in engines]
    return result


def _report(result: PruneResult, warned: set[str]) -> None:
    if result.runs:
        freed = sum(s.freed_bytes for s in result.space)
        log.info(
            "retention: deleted %d finished run(s) (%d task attempts, %d log lines) that "
            "ended before %s, in %d batch(es); %.1f MiB given back to the file system",
            result.runs,
            result.attempts,
            result.log_lines,
            result.cutoff,
            result.batches,
            freed / 2**20,
        )
    for space in result.space:
        if space.kept_bytes and space.note and space.database not in warned:
            warned.add(space.database)  # once per file and scheduler
            log.warning("retention: %s: %s", space.database, space.note)


async def retention_loop(host: RetentionHost) -> None:
    """Run retention passes until cancelled (a loop of the leading scheduler)."""
    interval = host.config.retention_interval_s
    warned: set[str] = set()
    await asyncio.sleep(min(FIRST_PASS_AFTER_S, interval))
    while True:
        if host.gate.is_open:
            stop = threading.Event()
            work = asyncio.ensure_future(asyncio.to_thread(run_pass, host, stop))
            try:
                result = await asyncio.shield(work)
            except asyncio.CancelledError:
                stop.set()  # the scheduler stops: end after the batch in progress
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(work, _STOP_WAIT_S)
                raise
            except Exception as exc:
                log.warning("retention pass failed (%s); trying again later", describe(exc))
            else:
                if result is not None:
                    _report(result, warned)
        await asyncio.sleep(interval)
