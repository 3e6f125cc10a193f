"""Executors on other hosts, for real: network namespaces joined to the scheduler by veth pairs.

The scheduler runs in the root namespace (where PostgreSQL listens on
127.0.0.1) and listens on a veth address; two ``ppacer executor`` processes run
each in a namespace of its own (its own loopback: the database is out of its
reach) and a working directory of its own holding a copy of the DAG file,
nothing else shared. A 100-task DAG completes with tasks on both; every task's
log lines are readable through ``ppacer logs`` and the UI, as each host wrote
them, each stored once.

Making namespaces needs root (``ip netns``); where they cannot be made the
test skips, saying why, except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import contextlib
import html
import os
import random
import shutil
import signal
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from ppacer.api.client import Client
from ppacer.cli import main
from ppacer.db.engine import database_url
from tests.conftest import wait_for
from tests.e2e import multihost_dags
from tests.procs import Proc, clean_env, ppacer_command

pytestmark = pytest.mark.postgres

DAG_FILE = Path(multihost_dags.__file__)


def _unavailable(reason: str) -> None:
    """Skip with ``reason``; in CI (where root and ``ip`` are given) fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"network namespaces are required in CI: {reason}")
    pytest.skip(f"cannot make network namespaces here: {reason}")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


@dataclass
class Host:
    """A namespace, its end of a veth pair and its own directory."""

    name: str
    netns: str
    address: str
    directory: Path


@dataclass
class Network:
    """The root namespace's addresses and the hosts beside it."""

    scheduler_address: str
    hosts: list[Host]
    links: list[str] = field(default_factory=list)


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    """Two namespaces, each joined to the root namespace by a veth pair; removed afterwards.

    Host i gets 10.X.Y.(4i+2)/30, the root end 10.X.Y.(4i+1); the scheduler listens
    on the first root end, which the second host reaches through its own link (the
    root namespace answers for all its addresses on any interface).
    """
    if shutil.which("ip") is None:
        _unavailable("the `ip` command (iproute2) is not installed")
    tag = uuid.uuid4().hex[:6]
    net = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
    made_ns: list[str] = []
    made_links: list[str] = []
    hosts: list[Host] = []
    try:
        for i in (1, 2):
            ns, root_end, host_end = f"ppacer-mh-{tag}-{i}", f"mh{tag}r{i}", f"mh{tag}h{i}"
            root_ip, host_ip = f"{net}.{4 * (i - 1) + 1}", f"{net}.{4 * (i - 1) + 2}"
            _ip("netns", "add", ns)
            made_ns.append(ns)
            _ip("link", "add", root_end, "type", "veth", "peer", "name", host_end)
            made_links.append(root_end)
            _ip("link", "set", host_end, "netns", ns)
            _ip("addr", "add", f"{root_ip}/30", "dev", root_end)
            _ip("link", "set", root_end, "up")
            inside = ("netns", "exec", ns, "ip")
            _ip(*inside, "addr", "add", f"{host_ip}/30", "dev", host_end)
            _ip(*inside, "link", "set", host_end, "up")
            _ip(*inside, "link", "set", "lo", "up")
            _ip(*inside, "route", "add", "default", "via", root_ip)
            directory = tmp_path / f"host{i}"
            directory.mkdir()
            hosts.append(Host(f"host{i}-{tag}", ns, host_ip, directory))
    except (subprocess.CalledProcessError, PermissionError) as exc:
        for link in made_links:
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=10)
        for ns in made_ns:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        stderr = getattr(exc, "stderr", "") or ""
        _unavailable(f"{exc}: {stderr.strip()}")
    try:
        yield Network(f"{net}.1", hosts, made_links)
    finally:
        # Deleting one end of a veth pair deletes both; the namespaces go with their ends.
        for link in made_links:
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=10)
        for ns in made_ns:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


class Executor:
    """A ``ppacer executor`` process inside a host's namespace, in the host's directory."""

    def __init__(self, host: Host, url: str) -> None:
        self.host = host
        shutil.copy(DAG_FILE, host.directory / DAG_FILE.name)
        env = clean_env(
            MULTIHOST_NAME=host.name,
            HOME=str(host.directory),
            TMPDIR=str(host.directory),
        )
        command = [*ppacer_command(), "executor", DAG_FILE.name, "--url", url]
        command += ["--name", host.name, "--concurrency", "4"]
        command += ["--spool-dir", str(host.directory / "spool")]
        self.log = (host.directory / "executor.log").open("w")
        # `ip netns exec` execs the command: the pid is the executor's.
        self.popen = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, *command],
            cwd=host.directory,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self.log.close()

    def output(self) -> str:
        return (self.host.directory / "executor.log").read_text()


def _pg_rows(url: str, sql: str) -> list[Any]:
    engine = create_engine(database_url(url))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)).mappings())
    finally:
        engine.dispose()


def _is_up(url: str) -> bool:
    try:
        return httpx2.get(f"{url}/healthz", timeout=5).status_code == 200
    except httpx2.HTTPError:
        return False


def _in_namespace(host: Host, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", host.netns, *command],
        cwd=host.directory,
        env=clean_env(HOME=str(host.directory)),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_100_task_dag_runs_on_executors_in_two_namespaces_with_every_log_line_stored_once(
    network: Network, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ppacer.toml of the developer's
    first, second = network.hosts
    # The executors' hosts reach the scheduler's address, and not the database.
    reach_db = "import socket; socket.create_connection(('127.0.0.1', 5432), timeout=5)"
    probe = _in_namespace(first, "python3", "-c", reach_db)
    assert probe.returncode != 0 and "ConnectionRefusedError" in probe.stderr, probe.stderr

    scheduler_dir = tmp_path / "scheduler"
    scheduler_dir.mkdir()
    shutil.copy(DAG_FILE, scheduler_dir / DAG_FILE.name)
    scheduler = Proc(
        [
            *("scheduler", DAG_FILE.name, "--db", pg_url),
            *("--host", network.scheduler_address, "--port", "0"),
        ],
        cwd=scheduler_dir,
        env=clean_env(),
    )
    executors: list[Executor] = []
    stack = contextlib.ExitStack()
    try:
        url = scheduler.url()
        assert url.startswith(f"http://{network.scheduler_address}:")
        wait_for(lambda: _is_up(url), 60, "the scheduler to answer")
        executors = [Executor(host, url) for host in network.hosts]
        client = stack.enter_context(Client(url))

        def registered() -> set[str]:
            return {e["name"] for e in client.list_executors()["items"] if e["registered"]}

        names = {first.name, second.name}
        wait_for(lambda: registered() >= names, 60, "both executors to register")

        run_id = client.trigger_dag_run("spread")["runId"]
        wait_for(
            lambda: client.get_dag_run(run_id)["status"] in ("SUCCESS", "FAILED"),
            90,
            "the 100-task run to finish",
        )
        run = client.get_dag_run(run_id)
        assert run["status"] == "SUCCESS", [e.output() for e in executors]

        # Every task ran once, on one of the two hosts, with a known code version.
        starts = _pg_rows(
            pg_url,
            'SELECT "TaskId", "Retry", "Executor", "CodeVersion" FROM dagruntaskstarts '
            "WHERE \"DagId\" = 'spread'",
        )
        assert len(starts) == 100 and {r["Retry"] for r in starts} == {0}
        ran_on = {r["TaskId"]: r["Executor"] for r in starts}
        per_executor = Counter(ran_on.values())
        assert set(per_executor) == names, per_executor
        assert all(r["CodeVersion"] for r in starts)
        assert {t["taskId"]: t["executor"] for t in run["tasks"]} == ran_on

        expected = {
            task: [multihost_dags.line(task, n, host) for n in range(multihost_dags.LINES)]
            for task, host in ran_on.items()
        }
        # Through `ppacer logs`, as a user on the scheduler's host reads them.
        cli = CliRunner()
        for task, lines in expected.items():
            result = cli.invoke(main, ["logs", str(run_id), task, "--url", url])
            assert result.exit_code == 0, result.output
            assert [row.split(maxsplit=3)[-1] for row in result.output.splitlines()] == lines
        # And from an executor's host, by the command line there.
        remote = _in_namespace(first, *ppacer_command(), "logs", str(run_id), "join", "--url", url)
        assert remote.returncode == 0, remote.stderr
        assert [row.split(maxsplit=3)[-1] for row in remote.stdout.splitlines()] == expected["join"]
        # Through the UI's page of each task's log.
        with httpx2.Client(base_url=url, timeout=30) as http:
            for task, lines in expected.items():
                page = http.get(f"/ui/runs/{run_id}/logs", params={"task": task})
                assert page.status_code == 200, page.text
                missing = [line for line in lines if html.escape(line) not in page.text]
                assert missing == [], f"{task}: {missing}"

        # Written on each host vs stored by the scheduler: the same lines, each once.
        written = {
            e.host.name: (e.host.directory / "written.log").read_text().splitlines()
            for e in executors
        }
        stored = _pg_rows(
            pg_url,
            'SELECT "TaskId", "Retry", "Seq", "Message" FROM tasklogs '
            'WHERE "DagId" = \'spread\' ORDER BY "TaskId", "Seq"',
        )
        stored_messages = [r["Message"] for r in stored]
        assert len(stored_messages) == len(set(stored_messages)) == 100 * multihost_dags.LINES
        assert sorted(stored_messages) == sorted(written[first.name] + written[second.name])
        for name, lines in written.items():
            assert all(line.endswith(f" on {name}") for line in lines)
            assert len(lines) == per_executor[name] * multihost_dags.LINES
        attempt_seqs = {(r["TaskId"], r["Retry"], r["Seq"]) for r in stored}
        assert len(attempt_seqs) == len(stored)
        print(
            f"\nmultihost: tasks per executor {dict(per_executor)}; log lines written "
            f"{ {n: len(lines) for n, lines in written.items()} } = "
            f"{sum(len(lines) for lines in written.values())}, stored {len(stored)} "
            f"(distinct (attempt, seq) {len(attempt_seqs)})"
        )
    finally:
        stack.close()
        for executor in executors:
            executor.stop()
        scheduler.stop()
        scheduler.close()
