"""``ppacer run --reload`` and ``ppacer executor --reload``: edit a DAG file, no restart.

Real processes on loopback: a run started before an edit finishes on the code it
started with, a run triggered after it takes the new code, a broken edit keeps
the last good DAGs and the UI says why, and fixing the file clears it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx2

import ppacer
from tests.conftest import wait_for
from tests.procs import Proc, clean_env
from tests.procs import procs as procs  # a fixture

DAG_CODE = """
import pathlib
import time

import ppacer

GATE = pathlib.Path(__file__).with_name("gate")


class Hold(ppacer.BaseTask):
    def execute(self, ctx):
        deadline = time.monotonic() + 60
        while not GATE.exists() and time.monotonic() < deadline:
            time.sleep(0.02)


class Say(ppacer.BaseTask):
    def execute(self, ctx):
        ctx.logger.info("{word}")


root = ppacer.Node(Hold("hold"))
root.next(Say("say"))
dags = ppacer.Registry([ppacer.Dag("flow").add_root(root).done()])
"""


def write_dag(path: Path, word: str) -> None:
    path.write_text(textwrap.dedent(DAG_CODE).replace("{word}", word), encoding="utf-8")


def reloads(proc: Proc) -> int:
    return sum("reloaded the DAGs of" in line for line in proc.err.all())


def said(client: ppacer.Client, run_id: int) -> list[str]:
    return [r.message for r in client.get_task_logs(run_id, "say").records]


def ui_with_reload_error(url: str) -> str | None:
    page = httpx2.get(f"{url}/ui/dags").text
    return page if "reload-error" in page else None


def finished(client: ppacer.Client, run_id: int) -> str | None:
    status = client.get_dag_run(run_id).status
    return status if status in ("SUCCESS", "FAILED") else None


def start_run_reloading(dag_file: Path, procs: list[Proc]) -> tuple[Proc, str]:
    """``ppacer run dags.py --reload`` on ``dag_file`` (version one); the process and its URL."""
    write_dag(dag_file, "version one")
    proc = Proc(
        ["run", dag_file.name, "--reload", "--port", "0"], cwd=dag_file.parent, env=clean_env()
    )
    procs.append(proc)
    return proc, proc.url()


def trigger_held_run(client: ppacer.Client) -> int:
    """A run of ``flow`` whose first task runs, held until the ``gate`` file exists."""
    run_id = client.trigger_dag_run("flow")["runId"]
    wait_for(
        lambda: any(t.taskId == "hold" for t in client.get_dag_run(run_id).tasks),
        30,
        "the run's first task to start",
    )
    return run_id


def test_run_reload_keeps_running_runs_on_their_code_and_shows_a_broken_edit(
    tmp_path: Path, procs: list[Proc]
) -> None:
    dag_file = tmp_path / "dags.py"
    proc, url = start_run_reloading(dag_file, procs)
    with ppacer.Client(url) as client:
        first = trigger_held_run(client)

        write_dag(dag_file, "version two")
        wait_for(lambda: reloads(proc) >= 1, 30, "the reload after the edit")
        second = client.trigger_dag_run("flow")["runId"]
        (tmp_path / "gate").touch()
        assert wait_for(lambda: finished(client, first), 30, "the first run") == "SUCCESS"
        assert wait_for(lambda: finished(client, second), 30, "the second run") == "SUCCESS"
        assert said(client, first) == ["version one"]  # started before the edit
        assert said(client, second) == ["version two"]

        # A broken edit: the DAGs loaded before stay, the UI says why.
        dag_file.write_text("import ppacer\ndef broken(:\n", encoding="utf-8")
        page = wait_for(lambda: ui_with_reload_error(url), 30, "the reload error on the UI")
        assert "SyntaxError" in page and "dags.py, line 2" in page, page[
            page.find("reload-error") : page.find("reload-error") + 600
        ]
        third = client.trigger_dag_run("flow")["runId"]
        assert wait_for(lambda: finished(client, third), 30, "a run on the last good DAGs") == (
            "SUCCESS"
        )
        assert said(client, third) == ["version two"]

        write_dag(dag_file, "version three")
        wait_for(lambda: reloads(proc) >= 2, 30, "the reload after the fix")
        assert "reload-error" not in httpx2.get(f"{url}/ui/dags").text
        fourth = client.trigger_dag_run("flow")["runId"]
        assert wait_for(lambda: finished(client, fourth), 30, "the fourth run") == "SUCCESS"
        assert said(client, fourth) == ["version three"]
    assert proc.stop() == 0


def test_separate_scheduler_and_executor_both_reload(tmp_path: Path, procs: list[Proc]) -> None:
    scheduler_dir, executor_dir = tmp_path / "s", tmp_path / "e"
    for where in (scheduler_dir, executor_dir):
        where.mkdir()
        write_dag(where / "dags.py", "version one")
        (where / "gate").touch()
    scheduler = Proc(
        ["scheduler", "dags.py", "--reload", "--port", "0"], cwd=scheduler_dir, env=clean_env()
    )
    procs.append(scheduler)
    url = scheduler.url()
    executor = Proc(
        ["executor", "dags.py", "--reload", "--url", url, "--name", "e1"],
        cwd=executor_dir,
        env=clean_env(),
    )
    procs.append(executor)
    with ppacer.Client(url) as client:
        first = client.trigger_dag_run("flow")["runId"]
        assert wait_for(lambda: finished(client, first), 30, "the first run") == "SUCCESS"
        assert said(client, first) == ["version one"]
        # The same edit deployed to both hosts: new runs run the new code.
        write_dag(scheduler_dir / "dags.py", "version two")
        write_dag(executor_dir / "dags.py", "version two")
        wait_for(lambda: reloads(scheduler) >= 1 and reloads(executor) >= 1, 30, "both reloads")
        second = client.trigger_dag_run("flow")["runId"]
        assert wait_for(lambda: finished(client, second), 30, "the second run") == "SUCCESS"
        assert said(client, second) == ["version two"]
