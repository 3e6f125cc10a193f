"""The Dask backend against a real cluster: a ``dask scheduler`` and two ``dask worker``s.

The DAG code reaches the workers as a module on their PYTHONPATH
(``tests.e2e.remote_dags``), or as a DAG file that ``ppacer executor`` uploads.
Tasks run on both workers, each in a child process; one past its timeout is
killed and FAILED; leases of long tasks are kept by heartbeats; every log
line is read back through the scheduler.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import ppacer
from ppacer.executor.dask_runner import distributed
from ppacer.executor.executor import Executor
from ppacer.scheduler.config import Config
from tests.cli.test_executor_failures import PPACER_EXECUTOR, ROOT, clean_env
from tests.conftest import query, wait_for, wait_run_finished
from tests.e2e.remote_dags import dags
from tests.e2e.test_executors import free_port

#: One worker process of two threads, no dashboard, on the loopback address.
WORKER_OPTIONS = ["--nworkers", "1", "--nthreads", "2", "--no-dashboard", "--host", "127.0.0.1"]


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dask", *args],
            cwd=log.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Dask scheduler and two workers (one process, two threads each) on loopback ports."""
    where = tmp_path_factory.mktemp("dask")
    env = clean_env()  # PYTHONPATH: the repository, so that tests.e2e.remote_dags imports
    address = f"tcp://127.0.0.1:{free_port()}"
    port = address.rsplit(":", 1)[1]
    procs = [
        _start(
            ["scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"],
            env,
            where / "scheduler.log",
        )
    ]
    try:
        for i in range(2):
            procs.append(
                _start(
                    ["worker", address, *WORKER_OPTIONS, "--name", f"w{i}"],
                    env,
                    where / f"worker{i}.log",
                )
            )
        client = distributed().Client(address, timeout=60, set_as_default=False)
        try:
            client.wait_for_workers(2, timeout=90)
        finally:
            client.close()
        yield address
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def scheduler(start_local):
    # A short lease: the long task lives only by the executor's heartbeats.
    return start_local(dags, with_executor=False, config=Config(lease_timeout_s=1.0))


def log_lines(runner, run_id: int, task_id: str) -> list[dict]:
    return list(runner.client.get_task_logs(run_id, task_id)["records"])


def test_a_dag_of_ten_tasks_runs_on_both_workers_with_its_logs(cluster, scheduler, db_paths):
    proc = subprocess.Popen(
        [*PPACER_EXECUTOR, "--url", scheduler.url, "--dask", cluster, "--concurrency", "8"],
        cwd=ROOT,
        env=clean_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = scheduler.client.trigger_dag_run("fanout")["runId"]
        (run,) = wait_run_finished(db_paths[0], "fanout", timeout_s=90)
        assert run["Status"] == "SUCCESS"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"running tasks on the Dask cluster at {cluster} (2 workers now)" in err
    workers: set[int] = set()
    for task_id in ["root", *(f"part{i}" for i in range(8)), "join"]:
        records = log_lines(scheduler, run_id, task_id)
        assert records[0]["message"].startswith("running on Dask worker tcp://127.0.0.1:")
        (ran,) = [r for r in records if r["message"].startswith("ran in pid")]
        # Each task in a child of a worker process, not in the executor.
        assert ran["attributes"]["ppid"] != proc.pid
        workers.add(ran["attributes"]["ppid"])
    assert len(workers) == 2, "both workers ran tasks"


def test_a_task_past_its_timeout_is_killed_on_the_worker_and_failed(cluster, scheduler, db_paths):
    executor = Executor(scheduler.new_client(), dags, dask=cluster, poll_wait_s=1.0).start()
    try:
        run_id = scheduler.client.trigger_dag_run("too_slow")["runId"]
        (run,) = wait_run_finished(db_paths[0], "too_slow", timeout_s=90)
    finally:
        executor.stop(30)
    assert run["Status"] == "FAILED"
    (error,) = query(db_paths[0], "SELECT Error FROM dagruntaskerrors WHERE DagId='too_slow'")
    assert error["Error"].startswith("TimeoutError: the task ran past its timeout"), error
    records = log_lines(scheduler, run_id, "sleepy")
    (sleeping,) = [r for r in records if r["message"].startswith("sleeping in pid")]
    pid = sleeping["attributes"]["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the workers are on this machine: the task's process is gone
    assert records[-1]["message"].startswith("task failed: TimeoutError")


def test_an_executor_that_stops_kills_its_tasks_on_the_workers(cluster, scheduler, db_paths):
    executor = Executor(scheduler.new_client(), dags, dask=cluster, poll_wait_s=1.0).start()
    run_id = scheduler.client.trigger_dag_run("stoppable")["runId"]
    # The worker ships the task's lines live: the task is running there.
    (sleeping,) = wait_for(
        lambda: [r for r in log_lines(scheduler, run_id, "sleepy") if "sleeping" in r["message"]],
        timeout_s=60,
        what="the task running on a worker",
    )
    assert not executor.stop(1.0)  # it cannot finish in time: it is stopped
    (run,) = wait_run_finished(db_paths[0], "stoppable")
    assert run["Status"] == "FAILED"
    (error,) = query(db_paths[0], "SELECT Error FROM dagruntaskerrors WHERE DagId='stoppable'")
    assert error["Error"].startswith("executor stopped"), error
    assert "its process on Dask worker tcp://127.0.0.1:" in error["Error"]
    with pytest.raises(ProcessLookupError):
        os.kill(sleeping["attributes"]["pid"], 0)


def test_a_task_longer_than_its_lease_lives_by_heartbeats(cluster, scheduler, db_paths):
    executor = Executor(scheduler.new_client(), dags, dask=cluster, poll_wait_s=1.0).start()
    try:
        run_id = scheduler.client.trigger_dag_run("steady")["runId"]
        (run,) = wait_run_finished(db_paths[0], "steady", timeout_s=90)
    finally:
        executor.stop(30)
    assert run["Status"] == "SUCCESS"
    assert not query(db_paths[0], "SELECT 1 FROM dagruntaskerrors WHERE DagId='steady'")
    assert log_lines(scheduler, run_id, "steady")[-1]["message"] == "steady done"


DAG_FILE = """
import ppacer


@ppacer.task
def uploaded(ctx):
    ctx.logger.info("from a DAG file the workers did not have")


dags = ppacer.Registry([ppacer.Dag("from_file").add_root(ppacer.Node(uploaded)).done()])
"""


def test_a_dag_file_given_by_path_is_uploaded_to_the_workers(cluster, tmp_path, db_paths):
    path = tmp_path / "uploaded_dags_for_dask.py"
    path.write_text(DAG_FILE)
    namespace: dict[str, object] = {}
    exec(compile(DAG_FILE, str(path), "exec"), namespace)
    registry = namespace["dags"]
    assert isinstance(registry, ppacer.Registry)
    db, logs = (str(p) for p in db_paths)
    runner = ppacer.LocalRunner(registry, db, logs, port=0, with_executor=False).start()
    command = [sys.executable, "-m", "ppacer", "executor", str(path), "--url", runner.url]
    proc = subprocess.Popen(
        [*command, "--dask", cluster],
        cwd=tmp_path,
        env=clean_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = runner.client.trigger_dag_run("from_file")["runId"]
        (run,) = wait_run_finished(db_paths[0], "from_file", timeout_s=90)
        assert run["Status"] == "SUCCESS", query(db_paths[0], "SELECT * FROM dagruntaskerrors")
        lines = wait_for(lambda: log_lines(runner, run_id, "uploaded"), what="the log")
        assert lines[-1]["message"] == "from a DAG file the workers did not have"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        runner.stop()
    assert "uploaded uploaded_dags_for_dask.py to the Dask workers" in err
