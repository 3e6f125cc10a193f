"""A scheduler stopped for 20 s while a task on an executor in another process logs 10,000 lines.

Real processes: ``ppacer scheduler`` and ``ppacer executor``. The scheduler is
frozen with SIGSTOP, so the executor's requests are not refused but hang (the
kernel still accepts its connections) until the client gives up; when the
scheduler resumes it answers the requests queued meanwhile too, whose senders
may have given up and send them again. Every line must be stored once, in order.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

import httpx2

from ppacer.api.client import Client
from tests.conftest import query, wait_for
from tests.e2e import outage_dags
from tests.procs import Proc, clean_env

DAG_FILE = Path(outage_dags.__file__)
#: How long the scheduler stays stopped, in seconds: the outage this test is about.
OUTAGE_S = 20.0


def _is_up(url: str) -> bool:
    try:
        return httpx2.get(f"{url}/healthz", timeout=5).status_code == 200
    except httpx2.HTTPError:
        return False


def _messages(client: Client, run_id: int) -> list[str]:
    out: list[str] = []
    while True:
        page = client.get_task_logs(run_id, "talk", 0, offset=len(out), limit=10_000)
        if not page["records"]:
            return out
        out += [r["message"] for r in page["records"]]


def test_a_scheduler_stopped_20_s_while_a_remote_task_logs_10000_lines_stores_each_once_in_order(
    tmp_path: Path,
) -> None:
    sched_dir, exec_dir = tmp_path / "scheduler", tmp_path / "executor"
    for directory in (sched_dir, exec_dir):
        directory.mkdir()
        shutil.copy(DAG_FILE, directory / DAG_FILE.name)
    spool = exec_dir / "spool"
    scheduler = Proc(["scheduler", DAG_FILE.name, "--port", "0"], cwd=sched_dir, env=clean_env())
    executor: Proc | None = None
    stack = contextlib.ExitStack()
    try:
        url = scheduler.url()
        wait_for(lambda: _is_up(url), 60, "the scheduler to answer")
        client = stack.enter_context(Client(url))
        executor = Proc(
            ["executor", DAG_FILE.name, "--url", url, "--name", "far", "--spool-dir", str(spool)],
            cwd=exec_dir,
            # 1,000 records in memory, then the spool files: both are used.
            env=clean_env(OUTAGE_DIR=str(exec_dir), PPACER_EXECUTOR_LOG_BUFFER_RECORDS="1000"),
        )
        executor.err.wait_for_text("registered with the scheduler", 60)
        run_id = client.trigger_dag_run("outage")["runId"]
        wait_for(
            lambda: len(_messages(client, run_id)) == outage_dags.BEFORE, 60, "the first lines"
        )

        os.kill(scheduler.popen.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        (exec_dir / "gate").touch()
        wait_for(lambda: (exec_dir / "logged").exists(), 60, "the task to log 10,000 lines")
        wait_for(lambda: list(spool.glob("spool-*")), 30, "records spooled to disk")
        # The outage's length is what this test is about, not a synchronisation: the
        # scheduler stays stopped for OUTAGE_S seconds whatever else has happened.
        time.sleep(max(0.0, stopped_at + OUTAGE_S - time.monotonic()))
        outage_s = time.monotonic() - stopped_at
        os.kill(scheduler.popen.pid, signal.SIGCONT)

        wait_for(
            lambda: client.get_dag_run(run_id)["status"] in ("SUCCESS", "FAILED"),
            60,
            "the run to finish after the outage",
        )
        expected = outage_dags.expected_lines()
        wait_for(lambda: _messages(client, run_id) == expected, 30, "every line, in order")
        run = client.get_dag_run(run_id)
    finally:
        stack.close()
        if executor is not None:
            executor.stop(signal.SIGTERM)
            executor.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(scheduler.popen.pid, signal.SIGCONT)
        scheduler.stop()
        scheduler.close()

    assert outage_s >= OUTAGE_S
    assert run["status"] == "SUCCESS", run
    rows = query(
        sched_dir / "logs.db",
        "SELECT Seq, Message FROM tasklogs WHERE TaskId = 'talk' AND Retry = 0 ORDER BY rowid",
    )
    seqs = [r["Seq"] for r in rows]
    # Stored once each: as many rows as lines, one per seq; in order of seq, the lines.
    assert len(rows) == len(set(seqs)) == len(expected)
    assert [r["Message"] for r in sorted(rows, key=lambda r: r["Seq"])] == expected
    assert not list(spool.glob("spool-*")), "the spool is emptied once delivered"
    said = [line for line in executor.err.all() if "ship" in line]
    assert sum("cannot ship task logs" in line for line in said) == 1, said
    print(
        f"\nlog outage: scheduler stopped {outage_s:.1f} s; lines written {len(expected)}, "
        f"stored {len(rows)} (distinct seq {len(set(seqs))}); executor said: {said}"
    )
