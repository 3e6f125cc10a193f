"""The right code or none, with real executors: a changed task body is never run.

A ``ppacer scheduler`` and two ``ppacer executor`` processes, each in its own
directory with its own copy of the DAG file; one copy has a changed body of
task ``compute``. The executor with the changed copy runs the tasks whose code
it shares with the scheduler and leaves ``compute`` to wait, with the reason
shown, until the executor with the right code comes and runs it. Each attempt
records the executor and the code version that ran it, and
``GET /dag/run/details/{runId}`` shows them.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
from pathlib import Path

import httpx2

from ppacer.api.client import Client
from tests.conftest import query, wait_for
from tests.e2e import identity_dags
from tests.procs import Proc, clean_env

DAG_FILE = Path(identity_dags.__file__)
CHANGED = "changed body"


def _is_up(url: str) -> bool:
    try:
        return httpx2.get(f"{url}/healthz", timeout=5).status_code == 200
    except httpx2.HTTPError:
        return False


def _executor(directory: Path, url: str, name: str) -> Proc:
    return Proc(
        ["executor", DAG_FILE.name, "--url", url, "--name", name, "--concurrency", "2"],
        cwd=directory,
        env=clean_env(),
    )


def test_an_executor_with_a_changed_task_body_never_runs_it_and_the_right_one_does(
    tmp_path: Path,
) -> None:
    dirs = {name: tmp_path / name for name in ("scheduler", "right", "changed")}
    for directory in dirs.values():
        directory.mkdir()
        shutil.copy(DAG_FILE, directory / DAG_FILE.name)
    changed_file = dirs["changed"] / DAG_FILE.name
    source = changed_file.read_text()
    assert identity_dags.BODY in source
    changed_file.write_text(source.replace(identity_dags.BODY, CHANGED))

    scheduler = Proc(
        ["scheduler", DAG_FILE.name, "--port", "0"], cwd=dirs["scheduler"], env=clean_env()
    )
    executors: list[Proc] = []
    stack = contextlib.ExitStack()
    try:
        url = scheduler.url()
        wait_for(lambda: _is_up(url), 60, "the scheduler to answer")
        client = stack.enter_context(Client(url))
        changed = _executor(dirs["changed"], url, "changed")
        executors.append(changed)
        said = changed.err.wait_for_text("registered with the scheduler", 60)
        assert "other code here for 1 task(s): identity/compute (not run here)" in said

        run_id = client.trigger_dag_run("identity")["runId"]

        def compute_waits() -> str | None:
            tasks = {t["taskId"]: t for t in client.get_dag_run(run_id)["tasks"]}
            if tasks["prepare"]["status"] != "SUCCESS":
                return None
            reason: str | None = tasks["compute"]["waitingReason"]
            return reason

        reason = wait_for(compute_waits, 60, "compute to wait for the right code")
        assert "code version" in reason and "changed has" in reason, reason
        tasks = {t["taskId"]: t for t in client.get_dag_run(run_id)["tasks"]}
        assert tasks["compute"]["status"] == "SCHEDULED" and tasks["compute"]["startTs"] is None

        right = _executor(dirs["right"], url, "right")
        executors.append(right)
        wait_for(
            lambda: client.get_dag_run(run_id)["status"] in ("SUCCESS", "FAILED"),
            60,
            "the run to finish once the right code is there",
        )
        run = client.get_dag_run(run_id)
        compute_logs = [r["message"] for r in client.get_task_logs(run_id, "compute")["records"]]
    finally:
        stack.close()
        for proc in executors:
            proc.stop(signal.SIGTERM)
            proc.close()
        scheduler.stop()
        scheduler.close()

    assert run["status"] == "SUCCESS", run
    db = dirs["scheduler"] / "scheduler.db"
    versions = {
        r["TaskId"]: r["CodeVersion"]
        for r in query(db, "SELECT TaskId, CodeVersion FROM dagtasks WHERE IsCurrent = 1")
    }
    starts = query(
        db, "SELECT TaskId, Retry, Executor, CodeVersion FROM dagruntaskstarts ORDER BY StartTs"
    )
    recorded = [(r["TaskId"], r["Retry"], r["Executor"], r["CodeVersion"]) for r in starts]
    # prepare ran on the changed executor (its code is the same) before the other came;
    # compute only on the right one, once; finish on either, with the scheduler's code.
    assert recorded[:2] == [
        ("prepare", 0, "changed", versions["prepare"]),
        ("compute", 0, "right", versions["compute"]),
    ]
    assert len(recorded) == 3 and recorded[2][:2] == ("finish", 0)
    assert recorded[2][2] in ("changed", "right") and recorded[2][3] == versions["finish"]
    # The API shows the same executor and code version per attempt.
    shown = [(t["taskId"], t["retry"], t["executor"], t["codeVersion"]) for t in run["tasks"]]
    assert shown == recorded
    # The changed body never ran anywhere; the original one ran on the right executor.
    assert compute_logs == ["compute: original body"]
    assert not list(tmp_path.glob(f"*/ran-compute-{CHANGED}"))
    assert [p.parent.name for p in tmp_path.glob("*/ran-compute-*")] == ["right"]
    print(f"\ncode identity: attempts (task, retry, executor, code version): {recorded}")
