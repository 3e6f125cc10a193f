"""The original ppacer's own Go clients against this scheduler: its executor and its UI.

They are built from the original's source with ``build.sh`` of the peer recipe
(Debian's Go packages; about 20 s). The source cannot live in this repository
and CI cannot fetch it, so the test runs only when told where it is:

    PPACER_ORIGINAL_CORE_GIT=/path/to/ppacer/core (a git directory)
    PPACER_ORIGINAL_UI_GIT=/path/to/ppacer/ui     (optional: the UI part)
    PPACER_ORIGINAL_BUILD_SH=/path/to/build.sh   (default: ../shared/peers/ppacer-go/build.sh)
    PPACER_ORIGINAL_BIN=/path/to/bin             (or: binaries built already)

and skips with this message otherwise.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

import ppacer
from ppacer.local import LocalRunner
from tests.conftest import query, wait_for

_REPO = Path(__file__).resolve().parents[2]
_DEFAULT_BUILD_SH = _REPO.parent / "shared" / "peers" / "ppacer-go" / "build.sh"


@pytest.fixture(scope="module")
def original_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory with ``ppacer-bench`` (and ``ppacer-ui``), built here if need be."""
    given = os.environ.get("PPACER_ORIGINAL_BIN")
    if given:
        return Path(given)
    core = os.environ.get("PPACER_ORIGINAL_CORE_GIT")
    if not core:
        pytest.skip(
            "the original's Go clients need its source: set PPACER_ORIGINAL_CORE_GIT "
            "(and PPACER_ORIGINAL_UI_GIT) to git directories of github.com/ppacer/core "
            "(and /ui), or PPACER_ORIGINAL_BIN to built binaries"
        )
    build_sh = Path(os.environ.get("PPACER_ORIGINAL_BUILD_SH", _DEFAULT_BUILD_SH))
    out = tmp_path_factory.mktemp("original")
    args = ["bash", str(build_sh), core, str(out)]
    if os.environ.get("PPACER_ORIGINAL_UI_GIT"):
        args.append(os.environ["PPACER_ORIGINAL_UI_GIT"])
    subprocess.run(args, check=True, capture_output=True, timeout=600)
    return out / "bin"


# The original's compatibility DAGs (its main.go), as this scheduler registers them.
class _Named(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> None:
        raise AssertionError("run by the Go executor, never here")


def _chain(dag_id: str, *ids: str, retries: dict[str, int] | None = None) -> ppacer.Dag:
    root = ppacer.Node(_Named(ids[0]))
    node = root
    for task_id in ids[1:]:
        config = ppacer.TaskConfig(retries=(retries or {}).get(task_id, 0))
        node = node.next(_Named(task_id), config)
    return ppacer.Dag(dag_id, root=root).done()


def _registry() -> ppacer.Registry:
    fan_root = ppacer.Node(_Named("root"))
    fan_root.next_async_and_merge([_Named(f"f{i}") for i in range(1, 6)], _Named("join"))
    return ppacer.Registry(
        [
            _chain("compat_chain", "a", "b", "c"),
            ppacer.Dag("compat_fanout", root=fan_root).done(),
            _chain("compat_fail", "start", "boom", "after"),
            _chain("compat_retry", "start", "flaky", "end", retries={"flaky": 2}),
        ]
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ours_with_go_executor(original_bin: Path, tmp_path: Path) -> Iterator[tuple[LocalRunner, Path]]:
    """Our scheduler (no executor of its own) and the original's Go executor, sharing logs.db."""
    db, logs = tmp_path / "scheduler.db", tmp_path / "logs.db"
    runner = LocalRunner(_registry(), str(db), str(logs), port=0, with_executor=False).start()
    names = "compat_chain,compat_fanout,compat_fail,compat_retry"
    stderr = (tmp_path / "go-executor.log").open("wb")
    go = [str(original_bin / "ppacer-bench"), "-role", "executor", "-url", runner.url]
    executor = subprocess.Popen(
        [*go, "-logs-db", str(logs), "-dags", names],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    try:
        yield runner, tmp_path
    finally:
        executor.terminate()
        executor.wait(10)
        stderr.close()
        runner.stop()


def test_the_original_executor_runs_our_runs(ours_with_go_executor) -> None:
    runner, tmp = ours_with_go_executor
    client = runner.client
    # A logical time whose microseconds end in zero: Go writes it trimmed (...00.12UTC).
    chain = client.trigger_dag_run("compat_chain", exec_ts="2024-03-11T12:00:00.120000Z")
    runs = {d: client.trigger_dag_run(d)["runId"] for d in ("compat_fanout", "compat_fail")}
    runs["compat_retry"] = client.trigger_dag_run("compat_retry")["runId"]
    runs["compat_chain"] = chain["runId"]

    def finished() -> dict[str, str]:
        statuses = {d: client.get_dag_run(r)["status"] for d, r in runs.items()}
        return statuses if all(s in ("SUCCESS", "FAILED") for s in statuses.values()) else {}

    statuses = wait_for(finished, 60, "the Go executor to finish the runs")
    assert statuses == {
        "compat_chain": "SUCCESS",
        "compat_fanout": "SUCCESS",
        "compat_fail": "FAILED",
        "compat_retry": "SUCCESS",
    }
    fail = {t["taskId"]: t["status"] for t in client.get_dag_run(runs["compat_fail"])["tasks"]}
    assert fail == {"start": "SUCCESS", "boom": "FAILED", "after": "UPSTREAM_FAILED"}
    retry = client.get_dag_run(runs["compat_retry"])["tasks"]
    assert [(t["retry"], t["status"]) for t in retry if t["taskId"] == "flaky"] == [
        (0, "FAILED_PENDING_RETRY"),
        (1, "SUCCESS"),
    ]
    # The Go executor wrote its log lines with its own timestamp text; they are found.
    written = query(
        tmp / "logs.db", "SELECT DISTINCT ExecTs FROM tasklogs WHERE DagId='compat_chain'"
    )
    assert [r["ExecTs"] for r in written] == ["2024-03-11T12:00:00.12UTC+00:00"]
    logs = client.get_task_logs(runs["compat_chain"], "b")
    assert [r["message"] for r in logs["records"]] == ["compat task ran"]


def test_the_original_ui_reads_our_answers(ours_with_go_executor, original_bin: Path) -> None:
    if not (original_bin / "ppacer-ui").exists():
        pytest.skip("the original's UI was not built (set PPACER_ORIGINAL_UI_GIT)")
    runner, tmp = ours_with_go_executor
    client = runner.client
    run_id = client.trigger_dag_run("compat_fail")["runId"]
    wait_for(lambda: client.get_dag_run(run_id)["status"] == "FAILED", 60, "the run to fail")
    port = _free_port()
    stderr = (tmp / "go-ui.log").open("wb")
    ui = subprocess.Popen(
        [str(original_bin / "ppacer-ui"), "-scheduler-port", str(runner.port), "-port", str(port)],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    try:
        base = f"http://127.0.0.1:{port}"

        def page(path: str) -> httpx2.Response | None:
            try:
                return httpx2.get(base + path, timeout=10)
            except httpx2.TransportError:
                return None

        main = wait_for(lambda: page("/"), 30, "the original UI to answer")
        assert main.status_code == 200
        assert "compat_fail" in main.text and "Error while" not in main.text
        details = page(f"/dagruns/{run_id}")
        assert details is not None and details.status_code == 200
        text = details.text
        assert "cannot read DAG run details" not in text
        for task_id in ("start", "boom", "after"):
            assert re.search(rf"\b{task_id}\b", text), task_id
        task = page(f"/dagruns/task/refresh/{run_id}/start/0/1x1")
        assert task is not None and task.status_code == 200
        assert "cannot get DAG run task details" not in task.text
        assert "compat task ran" in task.text
    finally:
        ui.terminate()
        ui.wait(10)
        stderr.close()
