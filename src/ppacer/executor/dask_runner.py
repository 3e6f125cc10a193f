"""The Dask backend, executor side: each attempt runs on a Dask cluster instead of here.

The executor pops attempts, reports their statuses and heartbeats their
leases as with any runner; :class:`DaskRunner` only changes where an attempt
runs: it submits :func:`~ppacer.executor.dask_worker.run_attempt` to the
cluster and waits for its result in the executor's worker thread (so
``concurrency`` bounds the attempts on the cluster too). The worker runs the
task in a child process that it kills at the timeout; stopping an attempt
(lease lost, executor stopping) sets a Dask event the worker watches.

How the DAG code reaches the workers: the task object is pickled by
reference (module and name), so the module defining it must be importable
on every worker - installed there, on their ``PYTHONPATH``, or uploaded with
``Client.upload_file`` (``ppacer executor dags.py --dask ...`` uploads a DAG
file given by path). A task defined in a script's ``__main__`` is pickled by
value and needs only its imports on the workers. A worker whose code differs
from the executor's (another code version) fails the attempt, saying so.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

from ppacer.api.client import Client
from ppacer.dag.dag import Dag, TaskInfo
from ppacer.executor.attempt import Attempt
from ppacer.executor.config_errors import ExecutorConfigError
from ppacer.executor.dask_worker import RemoteAttempt, RemoteResult, ShipTarget, run_attempt
from ppacer.executor.logship import LogShipper
from ppacer.executor.outcome import Outcome
from ppacer.executor.runner import context_fields

__all__ = ["REMOTE_GRACE_S", "UNKNOWN_SEQ", "DaskRunner", "distributed"]

log = logging.getLogger("ppacer.executor")

#: Seconds an attempt on the cluster may take beyond its timeout before the
#: executor gives up on its result: its wait for a free worker, the start of its
#: process, the shipping of its last log lines.
REMOTE_GRACE_S = 60.0
#: The first log ``seq`` the executor numbers from when it cannot know where the
#: worker's numbering stopped (the worker died): far past any worker's lines.
UNKNOWN_SEQ = 1 << 40
#: Seconds to wait for the Dask scheduler when connecting.
CONNECT_TIMEOUT_S = 30.0


class DaskRunner:
    """Runs attempts on the Dask cluster at ``address``; ``ship`` says where workers ship logs."""

    #: How long past an attempt's timeout its result is waited for (:data:`REMOTE_GRACE_S`).
    grace_s = REMOTE_GRACE_S

    def __init__(
        self, address: str, *, ship: ShipTarget | None, upload_files: tuple[str, ...] = ()
    ) -> None:
        self.address = address
        self.ship = ship
        self.upload_files = upload_files
        # The distributed.Client (untyped: distributed ships no type information).
        self._client: Any = None

    @classmethod
    def for_executor(
        cls,
        address: str,
        client: Client,
        executor: str,
        shipper: LogShipper | None,
        *,
        upload_files: tuple[str, ...] = (),
    ) -> DaskRunner:
        """The runner of an executor: workers ship logs as its ``shipper`` does (to the
        scheduler of ``client``, trusting its CA), or return them when it ships none."""
        ship = None
        if shipper is not None:
            ca_data = client.ca_data
            if ca_data is None and client.ca_file is not None:
                ca_data = Path(client.ca_file).read_text()
            ship = ShipTarget(
                ",".join(client.urls), client.token, ca_data, executor, shipper.config
            )
        return cls(address, ship=ship, upload_files=upload_files)

    def connect(self) -> None:
        """Connect to the Dask scheduler and upload the DAG files; a failure is a config error."""
        try:
            dd = distributed()
        except ImportError as exc:
            raise ExecutorConfigError(
                f"--dask {self.address}: the Dask client is not installed "
                "(pip install 'ppacer[dask]')"
            ) from exc
        try:
            client = dd.Client(self.address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ExecutorConfigError(
                f"cannot connect to the Dask scheduler at {self.address}: {exc} "
                "(check --dask / PPACER_EXECUTOR_DASK)"
            ) from exc
        try:
            for path in self.upload_files:
                client.upload_file(path)
                log.info("uploaded %s to the Dask workers", Path(path).name)
        except Exception as exc:
            client.close()
            raise ExecutorConfigError(
                f"cannot upload {', '.join(self.upload_files)} to the Dask workers: {exc}"
            ) from exc
        workers = len(client.scheduler_info().get("workers", {}))
        log.info("running tasks on the Dask cluster at %s (%d workers now)", self.address, workers)
        self._client = client

    def run(
        self,
        attempt: Attempt,
        dag: Dag,
        info: TaskInfo,
        logger: logging.LoggerAdapter[logging.Logger],
    ) -> tuple[Outcome, int]:
        """Run ``attempt`` on the cluster until it ends; its outcome and the next log ``seq``."""
        client = self._client
        assert client is not None, "DaskRunner.connect() first"
        t = attempt.task
        key = f"ppacer-{t.dag_id}-{t.task_id}-{t.retry}-{uuid.uuid4().hex[:12]}"
        spec = RemoteAttempt(
            task=info.task,
            exec_ts=t.exec_ts,
            fields=context_fields(t),
            timeout_s=attempt.config.timeout_s,
            code_version=info.code_version,
            task_version=info.config.version,
            dag_version=dag.version,
            stop_event=f"{key}-stop",
            ship=self.ship,
        )
        try:
            future = client.submit(run_attempt, spec, key=key, pure=False, retries=0)
        except Exception as exc:  # e.g. the task cannot be pickled
            logger.error("the task could not be sent to the Dask cluster: %r", exc)
            return Outcome(error=f"DaskError: cannot submit the task: {exc!r}", logged=True), 0
        stop = distributed().Event(spec.stop_event, client=client)
        attempt.set_stopper(stop.set)
        wait_s = attempt.config.timeout_s + REMOTE_GRACE_S
        if self.ship is not None:
            wait_s += self.ship.shipping.final_wait_s
        try:
            result: RemoteResult = future.result(timeout=wait_s)
        except TimeoutError:
            attempt.stop("no result from the Dask cluster")
            future.cancel()
            return Outcome(
                error=f"TimeoutError: no result from the Dask cluster within {wait_s:g} s "
                "(no free worker, or the worker hung)"
            ), UNKNOWN_SEQ
        except Exception as exc:
            return Outcome(error=_describe_failure(exc)), UNKNOWN_SEQ
        finally:
            if attempt.stop_reason is not None:
                _forget(stop)
        for level, message, attrs in result.records:
            logger.log(level, "%s", message, extra=attrs)
        outcome = result.outcome
        if attempt.stop_reason is not None and outcome.error is not None:
            outcome = Outcome(
                error=f"{attempt.stop_reason}; its process on Dask worker {result.worker} "
                "was killed",
                logged=outcome.logged,
            )
        return outcome, result.next_seq

    def close(self) -> None:
        """Close the connection to the Dask scheduler."""
        if self._client is not None:
            self._client.close()
            self._client = None


def distributed() -> Any:
    """The ``distributed`` module, imported when first needed (an optional extra), untyped."""
    import distributed as dd

    return dd


def _forget(stop: Any) -> None:
    """Clear a stop event that was set, so that the Dask scheduler forgets it."""
    try:
        stop.clear()
    except Exception as exc:  # only memory on the Dask scheduler is at stake
        log.debug("could not clear a Dask stop event: %r", exc)


def _describe_failure(exc: BaseException) -> str:
    """The error text of an attempt whose function failed on the cluster (not the task)."""
    name = type(exc).__name__
    if isinstance(exc, ImportError | AttributeError):
        return (
            f"DaskError: the Dask worker cannot load the task ({name}: {exc}): make the "
            "DAG code importable on every worker (installed, on PYTHONPATH, or uploaded)"
        )
    if name == "KilledWorker":
        return f"DaskError: the Dask workers running the task died ({exc})"
    if name == "CancelledError":
        return "DaskError: the task was cancelled on the Dask cluster"
    return f"DaskError: {name}: {exc}"
