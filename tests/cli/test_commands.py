"""Every ``ppacer`` command through its click entry point, against a real scheduler."""

from __future__ import annotations

import json
import re
import shlex
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest

import ppacer
from ppacer.cli import main
from ppacer.cli.loader import load_registry
from ppacer.db.migrate import LOGS_DB, SCHEDULER_DB
from ppacer.scheduler.config import Config
from ppacer.testing import ManualClock
from tests.conftest import wait_for

T0 = datetime(2024, 3, 11, 12, 0, tzinfo=UTC)
# Tasks of the "flaky" DAG fail until this is set (then a restart succeeds).
_FIXED = threading.Event()


@ppacer.task
def say_hello(ctx: ppacer.TaskContext) -> None:
    ctx.logger.info("hello, %s!", ctx.params.get("name", "world"))
    ctx.logger.warning("second line")


@ppacer.task
def flaky(ctx: ppacer.TaskContext) -> None:
    ctx.logger.info("trying")
    if not _FIXED.is_set():
        raise RuntimeError("not yet")


def _registry() -> ppacer.Registry:
    hello = ppacer.Dag(
        "hello",
        schedule=ppacer.FixedSchedule(T0, timedelta(hours=6)),
        root=ppacer.Node(say_hello),
        tags=["demo"],
        description="says hello",
    )
    return ppacer.Registry([hello.done(), ppacer.Dag("flaky", root=ppacer.Node(flaky)).done()])


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, command in group.commands.items():
        out.append((*prefix, name))
        if isinstance(command, click.Group):
            out += _commands(command, (*prefix, name))
    return out


@pytest.mark.parametrize("path", _commands(main), ids=" ".join)
def test_every_command_has_help_with_an_example(ppacer_cli, path):
    result = ppacer_cli(*path, "--help")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: main {' '.join(path)}")
    command = main
    for part in path:
        command = command.commands[part]  # type: ignore[attr-defined]
    if not isinstance(command, click.Group):
        assert "Example:" in result.output


def _help_examples() -> list[str]:
    """Every command line shown in the help texts: the quick start and each "Example:"."""
    examples = []
    quick_start = (main.help or "").split("Quick start", 1)[1]
    for line in quick_start.splitlines():
        if line.strip().startswith("ppacer "):
            examples.append(re.split(r"\s{2,}", line.strip())[0])
    for path in _commands(main):
        command: click.Command = main
        for part in path:
            command = command.commands[part]  # type: ignore[attr-defined]
        for line in (command.help or "").splitlines():
            if line.strip().startswith("Example:"):
                examples.append(
                    re.split(r"\s{2,}", line.strip().removeprefix("Example:").strip())[0]
                )
    return examples


@pytest.mark.parametrize("example", _help_examples())
def test_help_examples_fit_the_packaged_hello_dag(example):
    """Each example parses and names DAGs, tasks and targets of `ppacer.examples.hello`."""
    words = shlex.split(example)
    while "=" in words[0]:  # PPACER_PORT=8080 ppacer ...
        words.pop(0)
    assert words.pop(0) == "ppacer"
    command: click.Command = main
    while isinstance(command, click.Group):
        command = command.commands[words.pop(0)]
    params = command.make_context("ppacer", words).params  # usage errors raise here
    hello = load_registry("ppacer.examples.hello")
    if params.get("target") is not None:
        assert list(load_registry(params["target"])) == list(hello)
    if params.get("dag_id") is not None:
        assert params["dag_id"] in hello
    if params.get("task_id") is not None:
        assert params["task_id"] in hello["hello"].tasks


def test_help_examples_include_a_task_log():
    assert "ppacer logs 1 greet" in _help_examples()


def test_usage_errors_exit_2(ppacer_cli):
    assert ppacer_cli("no-such-command").exit_code == 2
    assert ppacer_cli("trigger").exit_code == 2  # missing DAG
    result = ppacer_cli("trigger", "hello", "--params", "[1]")
    assert result.exit_code == 2 and "must be a JSON object" in result.output
    result = ppacer_cli("trigger", "hello", "--at", "yesterday")
    assert result.exit_code == 2 and "--at" in result.output
    assert ppacer_cli("runs", "list", "--status", "HAPPY").exit_code == 2
    assert ppacer_cli("runs", "show", "zero").exit_code == 2
    result = ppacer_cli("dags", "list", env={"PPACER_PORT": "many"})
    assert result.exit_code == 2
    assert "port (from env PPACER_PORT): expected a whole number" in result.stderr


def test_unreachable_scheduler_exits_1(ppacer_cli):
    result = ppacer_cli("dags", "list", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: scheduler at http://127.0.0.1:9 unreachable")


def test_dags_list_show_pause_unpause(start_local, ppacer_cli):
    runner = start_local(_registry(), clock=ManualClock(T0 + timedelta(days=1, minutes=1)))
    env = {"PPACER_URL": runner.url}
    result = ppacer_cli("dags", "list", env=env)
    assert result.exit_code == 0, result.output
    assert "hello" in result.output and "flaky" in result.output
    # The schedule in words, as the UI says it (tests/cli/test_first_hour_schedule.py).
    assert "every 6 hours" in result.output and "manual only" in result.output
    listed = json.loads(ppacer_cli("dags", "list", "--json", env=env).output)
    assert [d["dagId"] for d in listed] == ["flaky", "hello"]
    assert listed[1]["nextScheduleTs"].startswith("2024-03-12T18:00:00")

    shown = ppacer_cli("dags", "show", "hello", env=env)
    assert shown.exit_code == 0
    assert "says hello" in shown.output and "say_hello" in shown.output
    assert "tags: demo" in shown.output
    details = json.loads(ppacer_cli("dags", "show", "hello", "--json", env=env).output)
    assert [t["taskId"] for t in details["tasks"]] == ["say_hello"]

    assert ppacer_cli("dags", "pause", "hello", env=env).output == "hello paused\n"
    # A paused DAG has no next run: what runs on unpause depends on its catch-up policy.
    paused = json.loads(ppacer_cli("dags", "list", "--json", env=env).output)[1]
    assert paused["paused"] is True and paused["nextScheduleTs"] is None
    row = next(
        line for line in ppacer_cli("dags", "list", env=env).output.splitlines() if "hello" in line
    )
    assert row.split()[-1] == "paused" and "2024-03-12 18:00" not in row
    assert "next run: none while paused" in ppacer_cli("dags", "show", "hello", env=env).output
    preview = ppacer_cli("schedule", "hello", "-n", "1", env=env)
    assert preview.exit_code == 0 and "hello is paused" in preview.stderr
    shown_paused = json.loads(ppacer_cli("dags", "show", "hello", "--json", env=env).output)
    assert shown_paused["paused"] is True and shown_paused["nextScheduleTs"] is None
    result = ppacer_cli("dags", "unpause", "hello", "--json", env=env)
    assert json.loads(result.output) == {"dagId": "hello", "paused": False}
    unpaused = json.loads(ppacer_cli("dags", "list", "--json", env=env).output)[1]
    assert unpaused["nextScheduleTs"].startswith("2024-03-12T18:00:00")
    missing = ppacer_cli("dags", "show", "nope", env=env)
    assert missing.exit_code == 1 and "unknown DAG 'nope'" in missing.stderr


def test_trigger_wait_runs_logs_restart(start_local, ppacer_cli):
    _FIXED.clear()
    runner = start_local(_registry())
    url = ("--url", runner.url)
    result = ppacer_cli("trigger", "hello", "--params", '{"name": "cli"}', "--wait", *url)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("run 1 of hello at ")
    assert result.output.endswith("run 1 SUCCESS\n")

    logs = ppacer_cli("logs", "1", "say_hello", *url)
    assert logs.exit_code == 0
    lines = logs.output.splitlines()
    assert lines[0].endswith("INFO    hello, cli!") and lines[1].endswith("WARNING second line")
    records = [
        json.loads(line)
        for line in ppacer_cli("logs", "1", "say_hello", "--json", *url).output.splitlines()
    ]
    assert [r["message"] for r in records] == ["hello, cli!", "second line"]
    # --follow on a finished task prints what there is and returns.
    assert ppacer_cli("logs", "1", "say_hello", "--follow", *url).output == logs.output

    failed = ppacer_cli("trigger", "flaky", "--wait", "--json", *url)
    assert failed.exit_code == 1
    assert json.loads(failed.output)["status"] == "FAILED"
    shown = ppacer_cli("runs", "show", "2", *url)
    assert "FAILED" in shown.output and "RuntimeError: not yet" in shown.output

    listed = ppacer_cli("runs", "list", "--json", *url)
    assert [r["runId"] for r in json.loads(listed.output)["items"]] == [2, 1]
    only_failed = json.loads(
        ppacer_cli("runs", "list", "--status", "failed", "--json", *url).output
    )
    assert [r["runId"] for r in only_failed["items"]] == [2]
    page = ppacer_cli("runs", "list", "--limit", "1", *url)
    assert "1-1 of 2; more with --offset" in page.output

    _FIXED.set()
    restarted = ppacer_cli("restart", "2", *url)
    assert restarted.exit_code == 0, restarted.output
    assert restarted.output == "run 2 of flaky restarted (restart 1)\n"
    wait_for(lambda: runner.client.get_dag_run(2)["status"] == "SUCCESS", what="the restarted run")
    follow = ppacer_cli("logs", "2", "flaky", "--retry", "0", *url)
    assert "trying" in follow.output and "not yet" in follow.output
    assert ppacer_cli("logs", "2", "flaky", *url).output.count("trying") == 1  # the latest attempt
    again = ppacer_cli("restart", "2", *url)
    assert again.exit_code == 1 and "error:" in again.stderr
    assert ppacer_cli("logs", "2", "nope", *url).exit_code == 1


def test_backfill_waits_with_progress_and_reports(start_local, ppacer_cli):
    runner = start_local(_registry(), clock=ManualClock(T0 + timedelta(days=10)))
    url = ("--url", runner.url)
    result = ppacer_cli(
        "backfill", "hello", "--from", "2024-03-12T00:00:00Z", "--to", "2024-03-12T18:00:00Z", *url
    )
    assert result.exit_code == 0, result.output
    assert "backfill 1 of hello: SUCCESS (4 runs created, 0 already existed)" in result.output
    assert "runs finished" in result.output  # the progress bar's last state
    answer = ppacer_cli(
        "backfill", "hello", "--from", "2024-03-13T00:00:00Z", "--to", "2024-03-13T06:00:00Z",
        "--json", *url,
    )  # fmt: skip
    final = json.loads(answer.output)
    assert final["status"] == "SUCCESS" and len(final["runIds"]) == 2
    started = ppacer_cli(
        "backfill", "hello", "--from", "2024-03-14T00:00:00Z", "--to", "2024-03-14T00:00:00Z",
        "--no-wait", *url,
    )  # fmt: skip
    assert started.output == "backfill 3 of hello started\n"
    backwards = ppacer_cli(
        "backfill", "hello", "--from", "2024-03-14T00:00:00Z", "--to", "2024-03-13T00:00:00Z", *url
    )
    assert backwards.exit_code == 2


def test_schedule_and_executors(start_local, ppacer_cli):
    runner = start_local(_registry(), clock=ManualClock(T0 + timedelta(minutes=1)))
    url = ("--url", runner.url)
    points = json.loads(ppacer_cli("schedule", "hello", "-n", "2", "--json", *url).output)
    assert [p["utc"][:19] for p in points] == ["2024-03-11T18:00:00", "2024-03-12T00:00:00"]
    assert "flaky has no scheduled runs" in ppacer_cli("schedule", "flaky", *url).output
    assert runner.executor is not None
    name = runner.executor.name
    listed = wait_for(
        lambda: json.loads(ppacer_cli("executors", "--json", *url).output), what="an executor"
    )
    assert listed[0]["name"] == name and listed[0]["capacity"] == runner.executor.concurrency
    assert name in ppacer_cli("executors", *url).output


def test_token_from_flag_env_or_file(start_local, ppacer_cli, tmp_path):
    runner = start_local(_registry(), config=Config(api_token="s3cret"))
    env = {"PPACER_URL": runner.url}
    denied = ppacer_cli("dags", "list", env=env)
    assert denied.exit_code == 1
    assert "error: unauthorized: missing API token" in denied.stderr
    assert ppacer_cli("dags", "list", "--token", "s3cret", env=env).exit_code == 0
    assert ppacer_cli("dags", "list", env={**env, "PPACER_TOKEN": "s3cret"}).exit_code == 0
    (tmp_path / "ppacer.toml").write_text(f'url = "{runner.url}"\ntoken = "s3cret"\n')
    assert ppacer_cli("dags", "list").exit_code == 0
    # A flag beats the file.
    assert ppacer_cli("dags", "list", "--token", "wrong").exit_code == 1


def test_config_show_masks_secrets_and_names_sources(ppacer_cli, tmp_path):
    (tmp_path / "ppacer.toml").write_text('token = "hunter2"\n[executor]\nconcurrency = 3\n')
    result = ppacer_cli("config", "show", env={"PPACER_PORT": "8080"})
    assert result.exit_code == 0
    assert "hunter2" not in result.output
    rows = {r["key"]: r for r in json.loads(ppacer_cli("config", "show", "--json").output)}
    assert rows["token"] == {"key": "token", "value": "********", "source": "file ppacer.toml"}
    assert rows["executor.concurrency"]["value"] == "3"
    assert rows["scheduler.timezone"] == {
        "key": "scheduler.timezone",
        "value": "UTC",
        "source": "default",
    }
    assert "env PPACER_PORT" in result.output
    other = tmp_path / "other.toml"
    other.write_text("port = 1\n")
    shown = json.loads(ppacer_cli("--config", str(other), "config", "show", "--json").output)
    assert {r["key"]: r["value"] for r in shown}["port"] == "1"
    (tmp_path / "ppacer.toml").write_text("[scheduler]\nmax_pop_wait = 1\n")
    bad = ppacer_cli("config", "show")
    assert bad.exit_code == 2
    assert "unknown key 'scheduler.max_pop_wait' (did you mean 'scheduler.max_pop_wait_s'?)" in (
        bad.stderr
    )


_INVALID = """
import ppacer

@ppacer.task
def a(ctx): pass

@ppacer.task
def b(ctx): pass

good = ppacer.Dag("good", root=ppacer.Node(a)).done()
loop_a = ppacer.Node(a)
loop_a.next(ppacer.Node(b)).next(loop_a)
cyclic = ppacer.Dag("cyclic", root=loop_a).done()
empty = ppacer.Dag("empty")
cron = ppacer.Dag("badcron", schedule="61 * * * *", root=ppacer.Node(a))
twin = ppacer.Dag("good", root=ppacer.Node(b))
dags = ppacer.Registry([good, cyclic, empty, cron, twin])
"""


def test_validate_reports_every_error(ppacer_cli, tmp_path):
    (tmp_path / "bad_dags.py").write_text(_INVALID)
    result = ppacer_cli("validate", "bad_dags.py")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 4, result.output
    assert any("DAG 'cyclic'" in e and "cycle detected" in e for e in errors)
    assert any("DAG 'empty'" in e and "no tasks" in e for e in errors)
    assert any("DAG 'badcron'" in e and "schedule" in e for e in errors)
    assert any("DAG 'good' is already in the registry" in e for e in errors)
    assert result.output.endswith("4 error(s); valid DAGs: good\n")
    as_json = json.loads(ppacer_cli("validate", "bad_dags.py", "--json").output)
    assert as_json["ok"] is False and as_json["dags"] == ["good"]
    # The DAG classes are themselves again afterwards: invalid DAGs raise.
    with pytest.raises(ppacer.errors.DagValidationError):
        ppacer.Dag("empty").done()


def test_validate_accepts_good_modules_and_reports_broken_files(ppacer_cli, tmp_path):
    (tmp_path / "fine.py").write_text(
        "import ppacer\n@ppacer.task\ndef t(ctx): pass\n"
        "hello = ppacer.Dag('hello', root=ppacer.Node(t))\n"
    )
    ok = ppacer_cli("validate", "fine")  # a module name, importable from the current directory
    assert ok.exit_code == 0 and ok.output == "1 DAG(s) valid: hello\n"
    packaged = ppacer_cli("validate", "ppacer.examples.hello")  # the README's quick start
    assert packaged.exit_code == 0 and packaged.output == "1 DAG(s) valid: hello\n"
    (tmp_path / "broken.py").write_text("import ppacer\nx = 1 / 0\n")
    broken = ppacer_cli("validate", "broken.py")
    assert broken.exit_code == 1
    assert "ZeroDivisionError: division by zero (broken.py, line 2)" in broken.output
    missing = ppacer_cli("validate", "missing.py")
    assert missing.exit_code == 1 and "missing.py: no such file" in missing.output
    (tmp_path / "nothing.py").write_text("x = 1\n")
    assert "defines no ppacer.Registry" in ppacer_cli("validate", "nothing.py").output


def test_db_upgrade_and_check(ppacer_cli, tmp_path):
    missing = ppacer_cli("db", "check")
    assert missing.exit_code == 1 and "does not exist" in missing.output
    assert not (tmp_path / "scheduler.db").exists()  # check creates nothing
    upgraded = ppacer_cli("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert ppacer_cli("db", "check").exit_code == 0
    checked = json.loads(ppacer_cli("db", "check", "--json").output)
    assert [(r["db"], r["ok"], r["revision"]) for r in checked] == [
        ("scheduler", True, SCHEDULER_DB.head),
        ("logs", True, LOGS_DB.head),
    ]
    conn = sqlite3.connect(tmp_path / "scheduler.db")
    conn.execute("DROP TABLE dagpauses")
    conn.commit()
    broken = ppacer_cli("db", "check", "--json")
    assert broken.exit_code == 1
    assert "missing table dagpauses" in json.loads(broken.output)[0]["problems"]
    conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    conn.commit()
    conn.close()
    newer = ppacer_cli("db", "check", "--json")
    assert newer.exit_code == 1
    assert any("upgrade ppacer" in p for p in json.loads(newer.output)[0]["problems"])
    refused = ppacer_cli("db", "upgrade")
    assert refused.exit_code == 1 and "a newer ppacer upgraded it" in refused.stderr


def test_db_paths_from_flags(ppacer_cli, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    db, logs = str(target / "s.db"), str(target / "l.db")
    assert ppacer_cli("db", "upgrade", "--db", db, "--logs-db", logs).exit_code == 0
    assert Path(db).exists() and Path(logs).exists()
    assert ppacer_cli("db", "check", "--db", db, "--logs-db", logs).exit_code == 0


_GATE = threading.Event()


@ppacer.task
def second_time_lucky(ctx: ppacer.TaskContext) -> None:
    ctx.logger.info("attempt %d", ctx.retry)
    if ctx.retry == 0:
        _GATE.wait(30)
        raise RuntimeError("first attempt fails")


def test_logs_follow_goes_through_retries(start_local, ppacer_cli):
    _GATE.clear()
    node = ppacer.Node(second_time_lucky, ppacer.TaskConfig(retries=1))
    runner = start_local(ppacer.Registry([ppacer.Dag("lucky", root=node).done()]))
    run_id = runner.client.trigger_dag_run("lucky")["runId"]
    reads = 0

    def first_record() -> list[dict[str, object]]:
        nonlocal reads
        reads += 1
        return list(runner.client.get_task_logs(run_id, "second_time_lucky")["records"])

    wait_for(first_record, what="the first attempt's log")

    registry = runner.scheduler.metrics.registry
    labels = {"method": "GET", "route": "/dag/run/task/logs/{runId}/{taskId}", "status": "200"}

    def log_reads() -> float:
        return registry.get_sample_value("ppacer_http_request_duration_seconds_count", labels) or 0

    # The server counts a request just after answering it: wait until it counted ours.
    wait_for(lambda: log_reads() >= reads, what="the test's own reads to be counted")
    before = log_reads()

    def open_gate_when_followed() -> None:
        # Once the follower has read the first attempt's log, let that attempt fail.
        wait_for(lambda: log_reads() > before, what="the follower's first request")
        _GATE.set()

    threading.Thread(target=open_gate_when_followed, daemon=True).start()
    result = ppacer_cli("logs", str(run_id), "second_time_lucky", "--follow", "--url", runner.url)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].endswith("INFO    attempt 0")
    assert "--- retry 1 ---" in lines
    assert lines[-1].endswith("INFO    attempt 1")


def test_packaged_hello_fails_on_request_and_a_restart_succeeds(start_local, ppacer_cli):
    # The help of `restart` tells newcomers to try it this way.
    # Between two points of its every-minute schedule, and the clock stays there.
    clock = ManualClock(T0 + timedelta(seconds=30))
    runner = start_local(load_registry("ppacer.examples.hello"), clock=clock)
    url = ("--url", runner.url)
    failed = ppacer_cli("trigger", "hello", "--params", '{"fail": true}', "--wait", "--json", *url)
    assert failed.exit_code == 1
    answer = json.loads(failed.output)
    assert answer["status"] == "FAILED"
    run_id = str(answer["runId"])
    assert "RuntimeError: asked to fail" in ppacer_cli("runs", "show", run_id, *url).output
    assert ppacer_cli("restart", run_id, *url).exit_code == 0
    wait_for(
        lambda: runner.client.get_dag_run(int(run_id))["status"] == "SUCCESS",
        what="the restarted run",
    )
    assert ppacer_cli("logs", run_id, "count", *url).output.count("step 3 of 3") == 1
    assert "hello, world!" in ppacer_cli("logs", run_id, "greet", *url).output
