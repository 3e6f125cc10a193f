"""The worker side of the Dask backend: one task attempt on a Dask worker.

:func:`run_attempt` is what the executor submits to the cluster. On the
worker it runs the task in a forked child process
(:func:`~ppacer.executor.isolation.run_in_child`), because cancelling a Dask
future does not stop a function that is running: the child is killed at the
task's timeout, or when the executor sets the attempt's stop event (its lease
was lost, the executor stops). The task's log lines are shipped to the
scheduler from the worker as they come, by a :class:`LogShipper` of the
worker's own (one per worker process and scheduler), numbered from 0; the
result tells the executor where the numbering stopped, so lines it adds
itself do not collide. Without a scheduler to ship to (an executor writing
to a logs DB or a handler of its own), the records come back with the result.

This module runs on the workers: it imports only what a worker has
(``ppacer`` and ``distributed``), and the task object arrives pickled - by
reference to its module, which must be importable on the worker.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from ppacer.api.client import Client
from ppacer.dag.task import Task, task_code_version, task_logger, task_source
from ppacer.executor.isolation import run_in_child
from ppacer.executor.logship import LogShipper, LogShipping, attempt_key
from ppacer.executor.outcome import Outcome
from ppacer.timeutils import monotonic

__all__ = ["RemoteAttempt", "RemoteResult", "ShipTarget", "run_attempt"]

#: Seconds between two looks at an attempt's stop event (each asks the Dask scheduler).
STOP_CHECK_S = 1.0
#: Records a worker keeps for the executor when it cannot ship them (per attempt).
MAX_RETURNED_RECORDS = 10_000


@dataclass(frozen=True, slots=True)
class ShipTarget:
    """Where a worker ships task logs: the scheduler, as the executor reaches it."""

    url: str
    token: str | None
    # PEM text of the CA that signs the scheduler's certificate (None: the system's CAs).
    ca_data: str | None
    executor: str
    shipping: LogShipping


@dataclass(frozen=True, slots=True)
class RemoteAttempt:
    """What a worker needs to run one attempt."""

    task: Task
    # The attempt's execTs as the scheduler sent it (its log records carry it).
    exec_ts: str
    # The TaskContext's fields but the logger (dag_id, exec_ts, task_id, retry, ...).
    fields: dict[str, Any]
    timeout_s: float
    # The code version the executor announced for the task, and what it is made of.
    code_version: str
    task_version: str | None
    dag_version: str | None
    # The name of the Dask event the executor sets to stop the attempt.
    stop_event: str
    ship: ShipTarget | None = None


@dataclass(frozen=True, slots=True)
class RemoteResult:
    """How the attempt ended on the worker."""

    outcome: Outcome
    # The attempt's next log ``seq`` (the worker numbered 0 .. next_seq - 1).
    next_seq: int
    # The worker's address and process id, for the executor's log line.
    worker: str
    pid: int
    # (level, message, attributes) of each record, when the worker did not ship them.
    records: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)


_shippers: dict[ShipTarget, tuple[LogShipper, logging.Logger]] = {}
_shippers_lock = threading.Lock()


def _shipper(target: ShipTarget) -> tuple[LogShipper, logging.Logger]:
    """This worker process's shipper to ``target`` (one, reused by every attempt)."""
    with _shippers_lock:
        found = _shippers.get(target)
        if found is None:
            client = Client(target.url, token=target.token, ca_data=target.ca_data)
            shipper = LogShipper(client, target.executor, target.shipping)
            base = logging.Logger("ppacer.task")
            base.addHandler(shipper)
            found = _shippers[target] = (shipper, base)
        return found


class _Collect(logging.Handler):
    """Keeps records to return them with the result (when there is nowhere to ship)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[int, str, dict[str, Any]]] = []
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) >= MAX_RETURNED_RECORDS:
            self.dropped += 1
            return
        attrs = dict(getattr(record, "ppacer_attrs", None) or {})
        self.records.append((record.levelno, record.getMessage(), attrs))


def run_attempt(spec: RemoteAttempt) -> RemoteResult:
    """Run one attempt on this Dask worker, in a child process; return how it ended."""
    dd: Any = importlib.import_module("distributed")
    address = dd.get_worker().address
    f = spec.fields
    key = attempt_key(f["dag_id"], spec.exec_ts, f["task_id"], f["retry"])
    collect: _Collect | None = None
    if spec.ship is not None:
        shipper, base = _shipper(spec.ship)
        shipper.start_attempt(key)
    else:
        collect = _Collect()
        base = logging.Logger("ppacer.task")
        base.addHandler(collect)
    logger = task_logger(base, *key, f.get("run_id"))
    logger.info("running on Dask worker %s (pid %d)", address, os.getpid())

    mismatch = _code_mismatch(spec, address)
    if mismatch is not None:
        outcome = Outcome(error=mismatch)
    else:
        stop = dd.Event(spec.stop_event)
        checked = monotonic()

        def should_stop() -> str | None:
            nonlocal checked
            if monotonic() - checked < STOP_CHECK_S:
                return None
            checked = monotonic()
            try:
                return "stopped by its executor" if stop.is_set() else None
            except Exception:  # the Dask scheduler is away: the deadline still holds
                return None

        deadline = monotonic() + spec.timeout_s
        outcome = run_in_child(spec.task, f, logger, deadline, should_stop, lambda _: None)
    if outcome.error is not None and not outcome.logged:
        logger.error("task failed: %s", outcome.error)
        outcome = Outcome(error=outcome.error, logged=True)
    if spec.ship is not None:
        next_seq = shipper.finish_attempt(key)
        return RemoteResult(outcome, next_seq, address, os.getpid())
    assert collect is not None
    records = collect.records
    if collect.dropped:
        records.append((logging.WARNING, f"{collect.dropped} more lines were not kept", {}))
    return RemoteResult(outcome, 0, address, os.getpid(), records)


def _code_mismatch(spec: RemoteAttempt, address: str) -> str | None:
    """Why this worker must not run the task: its code is not the version announced."""
    source = task_source(spec.task)
    if source.startswith("<source of "):
        # Source unreadable here (the task came pickled by value): it is the executor's code.
        return None
    version = task_code_version(source, spec.task_version, spec.dag_version)
    if version == spec.code_version:
        return None
    return (
        f"CodeVersionError: Dask worker {address} has other code for task "
        f"{spec.fields['task_id']!r} (version {version}, the executor's is {spec.code_version}): "
        "deploy the executor's DAG code to the workers"
    )
