"""Commands about runs: ``runs list|show``, ``trigger``, ``restart``, ``logs``, ``backfill``.

Each talks to a running scheduler over its API (``--url`` / ``--token`` or
``PPACER_URL`` / ``PPACER_TOKEN``, or the settings file) and takes ``--json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import click

from ppacer.api.client import Client
from ppacer.cli.common import (
    RUN_COLUMNS,
    State,
    client_options,
    connect,
    console,
    echo_json,
    fail,
    parse_json_object,
    parse_time,
    print_table,
    run_row,
    short_ts,
)
from ppacer.cli.outcome import backfill_outcome, failed_tasks, run_outcome
from ppacer.dag.status import DagRunStatus, TaskStatus
from ppacer.timeutils import parse_ts

__all__ = ["RUN_COMMANDS"]

# How often --follow, --wait and backfill progress ask the scheduler, in seconds.
_POLL_S = 0.5
_FINISHED_RUN = (str(DagRunStatus.SUCCESS), str(DagRunStatus.FAILED))

pass_state = click.make_pass_decorator(State, ensure=True)


# ---------------------------------------------------------------------------- runs


@click.group()
def runs() -> None:
    """List and show DAG runs."""


@runs.command("list")
@click.option("--dag", "dag_id", default=None, help="Only runs of this DAG.")
@click.option(
    "--status",
    type=click.Choice([str(s) for s in DagRunStatus], case_sensitive=False),
    default=None,
    help="Only runs in this status.",
)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0))
@client_options
@pass_state
def runs_list(
    state: State,
    dag_id: str | None,
    status: str | None,
    limit: int,
    offset: int,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """List DAG runs, newest logical time (exec time) first.

    The order of `ppacer dags show`'s latest runs: a run triggered --at an
    earlier time is listed by that time, not by when it was created.

    Example: ppacer runs list --dag hello --status FAILED
    """
    with connect(state, url, token) as client:
        page = client.list_dag_runs(dag_id, status.upper() if status else None, limit, offset)
    if as_json:
        echo_json(page)
        return
    print_table(RUN_COLUMNS, [run_row(r) for r in page["items"]])
    shown = len(page["items"])
    if page["total"] > offset + shown:
        click.echo(f"{offset + 1}-{offset + shown} of {page['total']}; more with --offset")


@runs.command("show")
@click.argument("run_id", type=click.IntRange(1))
@client_options
@pass_state
def runs_show(state: State, run_id: int, url: str | None, token: str | None, as_json: bool) -> None:
    """Show run RUN_ID: status, parameters and every task attempt.

    Each attempt shows its queue wait (scheduled until an executor took it)
    and its run time (taken until it ended) apart, the executor that ran it,
    and its error or why it still waits.

    Example: ppacer runs show 1
    """
    with connect(state, url, token) as client:
        run = client.get_dag_run(run_id).to_json()
    if as_json:
        echo_json(run)
        return
    out = console()
    out.print(
        f"run [bold]{run['runId']}[/bold] of {run['dagId']} at {short_ts(run['execTs'])} UTC: "
        f"[bold]{run['status']}[/bold]"
    )
    if run["params"]:
        out.print(f"params: {json.dumps(run['params'])}")
    print_table(ATTEMPT_COLUMNS, [attempt_row(t) for t in run["tasks"]])


#: The columns of ``runs show``'s table of attempts: the queue wait and the run time apart.
ATTEMPT_COLUMNS = (
    "task",
    "retry",
    "status",
    "scheduled",
    "queue wait",
    "run time",
    "executor",
    "error / waiting for",
)

# Statuses whose attempt has stopped running: its last status change ends its run time.
_RUN_OVER = frozenset(
    str(s) for s in (TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.FAILED_PENDING_RETRY)
)


def attempt_row(attempt: Mapping[str, Any]) -> list[Any]:
    """An attempt of ``GET /dag/run/details`` as a row of :data:`ATTEMPT_COLUMNS`.

    The queue wait runs from when the attempt was scheduled (``insertTs``) to
    when an executor took it (``startTs``); the run time from then to its final
    status (``statusUpdateTs``). "waiting" and "running" mark the one still
    going; empty: not known (never taken by an executor, e.g. marked by hand or
    upstream failed, or a scheduler that does not record starts).
    """
    started = attempt.get("startTs")
    status = attempt["status"]
    wait = ran = ""
    if status == str(TaskStatus.SCHEDULED):  # queued (again, after a recovery: started once)
        wait = "waiting"
    elif started:
        wait = format_duration(_seconds(attempt["insertTs"], started))
        if status in _RUN_OVER:
            ran = format_duration(_seconds(started, attempt["statusUpdateTs"]))
        elif status == str(TaskStatus.RUNNING):
            ran = "running"
    reason = attempt.get("waitingReason")
    return [
        attempt["taskId"],
        attempt["retry"],
        status,
        short_ts(attempt["insertTs"]),
        wait,
        ran,
        attempt.get("executor"),
        attempt["error"] or reason,
    ]


def _seconds(start: str, end: str) -> float:
    return max(0.0, (parse_ts(end) - parse_ts(start)).total_seconds())


def format_duration(seconds: float) -> str:
    """A duration for tables: ``850ms``, ``12.34s``, ``2m05.3s``, ``1h02m03s``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{int(minutes)}m{rest:04.1f}s"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s"


# ---------------------------------------------------------------------------- actions


def _wait_for_run(client: Client, run_id: int) -> dict[str, Any]:
    while True:
        run = client.get_dag_run(run_id).to_json()
        if run["status"] in _FINISHED_RUN:
            return run
        time.sleep(_POLL_S)


@click.command()
@click.argument("dag_id")
@click.option("--params", default=None, help="Run parameters, a JSON object: '{\"day\": 1}'.")
@click.option("--at", default=None, help="Logical time, e.g. 2024-03-11T12:00:00Z (default: now).")
@click.option("--wait", is_flag=True, help="Wait for the run to finish; exit 1 if it FAILED.")
@client_options
@pass_state
def trigger(
    state: State,
    dag_id: str,
    params: str | None,
    at: str | None,
    wait: bool,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Start a run of DAG_ID now (or for the logical time --at).

    With --wait, a run that FAILED names each failed task with its error and
    the `ppacer logs` command showing its log, and the command exits 1
    (--json: the answer has `status` and `failedTasks`).

    Example: ppacer trigger hello --params '{"name": "ppacer"}' --wait
    """
    parsed = parse_json_object(params, "--params")
    when = parse_time(at, "--at")
    with connect(state, url, token) as client:
        answer = dict(client.trigger_dag_run(dag_id, parsed, when).to_json())
        if answer["runId"] is None:
            # The original scheduler answers an empty 200: the run exists, unnamed.
            if not as_json:
                click.echo(f"run of {dag_id} triggered (the scheduler did not say its run id)")
            if wait:
                fail("--wait: the scheduler did not say which run it made; look in its UI")
        elif not as_json:
            click.echo(f"run {answer['runId']} of {dag_id} at {answer['execTs']}")
        if wait:
            run = _wait_for_run(client, answer["runId"])
            answer["status"] = run["status"]
            answer["failedTasks"] = failed_tasks(run)
            if not as_json:
                for line in run_outcome(run):
                    click.echo(line)
    if as_json:
        click.echo(json.dumps(answer))
    if wait and answer["status"] != str(DagRunStatus.SUCCESS):
        raise SystemExit(1)


@click.command()
@click.argument("run_id", type=click.IntRange(1))
@client_options
@pass_state
def restart(state: State, run_id: int, url: str | None, token: str | None, as_json: bool) -> None:
    """Restart the FAILED run RUN_ID: its failed tasks run again, successful ones stay.

    With the example DAG, `ppacer trigger hello --params '{"fail": true}' --wait`
    makes a run whose task `count` fails its first attempt; restart it with its run id.

    Example: ppacer restart 7
    """
    with connect(state, url, token) as client:
        run = client.get_dag_run(run_id).to_json()
        answer = dict(client.restart_dag_run(run["dagId"], run["execTs"]).to_json())
    answer["runId"] = run_id
    if as_json:
        click.echo(json.dumps(answer))
    else:
        click.echo(f"run {run_id} of {run['dagId']} restarted (restart {answer['restart']})")


def _print_records(records: list[dict[str, Any]], as_json: bool) -> None:
    for r in records:
        if as_json:
            click.echo(json.dumps(r))
        else:
            click.echo(f"{short_ts(r['insertTs'])} {r['level']:<7} {r['message']}")


@click.command()
@click.argument("run_id", type=click.IntRange(1))
@click.argument("task_id")
@click.option("--retry", type=click.IntRange(0), default=None, help="Attempt (default: latest).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the task finishes.")
@client_options
@pass_state
def logs(
    state: State,
    run_id: int,
    task_id: str,
    retry: int | None,
    follow: bool,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Print the log of task TASK_ID in run RUN_ID (the latest attempt unless --retry).

    With --follow, new records are printed as they come, through retries,
    until the task has finished. --json prints one JSON object per record.

    Example: ppacer logs 1 greet --follow
    """
    with connect(state, url, token) as client:
        page = client.get_task_logs(run_id, task_id, retry)
        _print_records(page["records"], as_json)
        while follow:
            offset = page["nextOffset"]
            if page["finished"] or page["runStatus"] in _FINISHED_RUN:
                if retry is None and page["latestRetry"] > page["retry"]:
                    page = client.get_task_logs(run_id, task_id, page["retry"] + 1)
                    if not as_json:
                        click.echo(f"--- retry {page['retry']} ---")
                    _print_records(page["records"], as_json)
                    continue
                done = page["status"] in (
                    str(TaskStatus.SUCCESS),
                    str(TaskStatus.FAILED),
                    str(TaskStatus.UPSTREAM_FAILED),
                    str(TaskStatus.SKIPPED),
                )
                if done or retry is not None or page["runStatus"] in _FINISHED_RUN:
                    break
            time.sleep(_POLL_S)
            page = client.get_task_logs(run_id, task_id, page["retry"], offset)
            _print_records(page["records"], as_json)


@click.command()
@click.argument("dag_id")
@click.option("--from", "start", required=True, help="First logical time (inclusive).")
@click.option("--to", "end", required=True, help="Last logical time (inclusive).")
@click.option("--max-active-runs", default=4, show_default=True, type=click.IntRange(1))
@click.option("--no-wait", is_flag=True, help="Return once the backfill is created.")
@client_options
@pass_state
def backfill(
    state: State,
    dag_id: str,
    start: str,
    end: str,
    max_active_runs: int,
    no_wait: bool,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Run DAG_ID's schedule points from --from to --to, in order, with a progress bar.

    Points that have a run already are skipped: the last line says how many.
    Exits 1 if any of its runs FAILED.

    Example: ppacer backfill hello --from 2024-03-01T00:00:00Z --to 2024-03-01T00:09:00Z
    """
    first, last = parse_time(start, "--from"), parse_time(end, "--to")
    assert first is not None and last is not None
    if last < first:
        raise click.BadParameter("must not be before --from", param_hint="--to")
    with connect(state, url, token) as client:
        answer = client.backfill(dag_id, first, last, max_active_runs).to_json()
        backfill_id = answer["backfillId"]
        if no_wait:
            click.echo(
                json.dumps(answer) if as_json else f"backfill {backfill_id} of {dag_id} started"
            )
            return
        final = _follow_backfill(client, backfill_id, quiet=as_json)
    # Counted when the backfill was made: only the answer to its creation says it.
    final["existingRuns"] = answer.get("existingRuns")
    if as_json:
        echo_json(final)
    else:
        click.echo(backfill_outcome(answer, final))
    if final["status"] != "SUCCESS":
        raise SystemExit(1)


def _follow_backfill(client: Client, backfill_id: int, *, quiet: bool) -> dict[str, Any]:
    """Poll a backfill until it ends, showing its finished runs as a progress bar."""
    finished: dict[int, str] = {}
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(
        TextColumn("backfill {task.fields[id]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs finished"),
        TimeElapsedColumn(),
        console=console(),
        disable=quiet,
        transient=False,
    )
    with progress:
        bar = progress.add_task("backfill", total=None, id=backfill_id)
        while True:
            info = client.get_backfill(backfill_id).to_json()
            for run_id in info["runIds"]:
                if run_id not in finished:
                    status = client.get_dag_run(run_id)["status"]
                    if status not in _FINISHED_RUN:
                        break  # runs finish about in order: look again at the next poll
                    finished[run_id] = status
            done = info["status"] != "RUNNING"
            total = len(info["runIds"]) if done or info["nextTs"] is None else None
            progress.update(bar, completed=len(finished), total=total)
            if done:
                return info
            time.sleep(_POLL_S)


RUN_COMMANDS = [runs, trigger, restart, logs, backfill]
