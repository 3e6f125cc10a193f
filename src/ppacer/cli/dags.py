"""Commands about DAGs and executors: ``dags list|show|pause|unpause``, ``schedule``, ``executors``.

Each talks to a running scheduler over its API (``--url`` / ``--token`` or
``PPACER_URL`` / ``PPACER_TOKEN``, or the settings file) and takes ``--json``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from ppacer.cli.common import (
    RUN_COLUMNS,
    State,
    client_options,
    connect,
    console,
    echo_json,
    fetch_all,
    print_table,
    run_row,
    short_ts,
)
from ppacer.dag.describe import describe_schedule
from ppacer.timeutils import parse_ts

__all__ = ["DAG_COMMANDS"]

pass_state = click.make_pass_decorator(State, ensure=True)


# ---------------------------------------------------------------------------- dags


@click.group()
def dags() -> None:
    """List, show, pause and unpause DAGs."""


def schedule_words(dag: dict[str, Any]) -> str:
    """A DAG's schedule in words, as the UI shows it (``every minute``, ``manual only``).

    Made from the stored text the API sends in ``schedule`` (the original
    scheduler sends it too); a cron there names its zone, or the scheduler's
    ``timezone`` for a cron given without one (when the scheduler says it).
    """
    return describe_schedule(dag.get("schedule"), dag.get("timezone"))


def _unless_paused(dag: dict[str, Any]) -> dict[str, Any]:
    """The DAG with no next run if it is paused.

    The API gives a paused DAG's next schedule point, but no run happens
    there: what runs after an unpause depends on its catch-up policy.
    """
    return {**dag, "nextScheduleTs": None} if dag["paused"] else dag


@dags.command("list")
@client_options
@pass_state
def dags_list(state: State, url: str | None, token: str | None, as_json: bool) -> None:
    """List the scheduler's DAGs with their schedule, pause state and latest run.

    Example: ppacer dags list
    """
    with connect(state, url, token) as client:
        items = [
            _unless_paused(d)
            for d in fetch_all(lambda limit, offset: client.list_dags(limit, offset).to_json())
        ]
    if as_json:
        echo_json(items)
        return
    rows = []
    for d in items:
        last = d.get("lastRun")
        rows.append(
            [
                d["dagId"],
                schedule_words(d),
                "yes" if d["paused"] else "no",
                d["taskNum"],
                f"{last['status']} {short_ts(last['execTs'])}" if last else "",
                "paused" if d["paused"] else short_ts(d["nextScheduleTs"]),
            ]
        )
    print_table(("DAG", "schedule", "paused", "tasks", "latest run", "next run (UTC)"), rows)


@dags.command("show")
@click.argument("dag_id")
@client_options
@pass_state
def dags_show(state: State, dag_id: str, url: str | None, token: str | None, as_json: bool) -> None:
    """Show DAG_ID: schedule, attributes, tasks in graph order and latest runs.

    The latest runs are sorted as `ppacer runs list` sorts: newest logical
    time (exec time) first.

    Example: ppacer dags show hello
    """
    with connect(state, url, token) as client:
        dag = _unless_paused(client.get_dag(dag_id).to_json())
    if as_json:
        echo_json(dag)
        return
    out = console()
    out.print(f"[bold]{dag['dagId']}[/bold] {dag['description']}".rstrip())
    out.print(f"schedule: {schedule_words(dag)}")
    if dag["paused"]:
        out.print("next run: none while paused")
    elif dag["nextScheduleTs"]:
        out.print(f"next run: {short_ts(dag['nextScheduleTs'])} UTC")
    else:
        out.print("next run: -")
    out.print(
        f"paused: {'yes' if dag['paused'] else 'no'}   catch-up: "
        f"{'yes' if dag['catchUp'] else 'no'}   max active runs: {dag['maxActiveRuns']}   "
        f"tags: {', '.join(dag['tags']) or '-'}"
    )
    print_table(
        ("task", "type", "upstream", "depth", "retries", "timeout (s)", "trigger rule"),
        [
            [
                t["taskId"],
                t["taskType"],
                ", ".join(t["parents"]),
                t["depth"],
                t["config"].get("retries", ""),
                t["config"].get("timeoutSeconds", ""),
                t["triggerRule"],
            ]
            for t in dag["tasks"]
        ],
        title="tasks",
    )
    if dag["recentRuns"]:
        print_table(RUN_COLUMNS, [run_row(r) for r in dag["recentRuns"]], title="latest runs")


@dags.command("pause")
@click.argument("dag_id")
@client_options
@pass_state
def dags_pause(
    state: State, dag_id: str, url: str | None, token: str | None, as_json: bool
) -> None:
    """Pause DAG_ID: it creates no scheduled runs until unpaused (triggers still work).

    Example: ppacer dags pause hello
    """
    with connect(state, url, token) as client:
        client.pause_dag(dag_id)
    click.echo(json.dumps({"dagId": dag_id, "paused": True}) if as_json else f"{dag_id} paused")


@dags.command("unpause")
@click.argument("dag_id")
@client_options
@pass_state
def dags_unpause(
    state: State, dag_id: str, url: str | None, token: str | None, as_json: bool
) -> None:
    """Unpause DAG_ID; the points missed meanwhile follow its catch-up policy.

    Example: ppacer dags unpause hello
    """
    with connect(state, url, token) as client:
        client.unpause_dag(dag_id)
    click.echo(json.dumps({"dagId": dag_id, "paused": False}) if as_json else f"{dag_id} unpaused")


def _zone(dag: dict[str, Any]) -> ZoneInfo | None:
    """The zone of a DAG's local times: its cron's own zone, else the scheduler's ``timezone``.

    As the scheduler previews it (``GET /dag/schedule``); None when neither is
    known (a scheduler that does not send ``timezone``).
    """
    name = dag.get("timezone")
    text = str(dag.get("schedule") or "")
    if text.startswith("Cron: ") and text.endswith(")"):
        name = text.rsplit("(", 1)[-1].removesuffix(")")
    try:
        return ZoneInfo(str(name)) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def readable_point(point: dict[str, str], zone: ZoneInfo | None, fmt: str) -> tuple[str, str]:
    """A schedule point as ``("2024-03-31 03:00 CEST", "2024-03-31 01:00 UTC")``.

    Without the zone's name, the local time shows its offset (``UTC+01:00``).
    """
    utc = parse_ts(point["utc"])
    if zone is not None:
        local = utc.astimezone(zone)
        return f"{local.strftime(fmt)} {local.tzname()}", f"{utc.strftime(fmt)} UTC"
    given = datetime.fromisoformat(point["local"])
    offset = given.isoformat()[-6:] if given.utcoffset() else ""
    return f"{given.strftime(fmt)} UTC{offset}", f"{utc.strftime(fmt)} UTC"


@click.command()
@click.argument("dag_id")
@click.option("-n", "count", default=10, show_default=True, type=click.IntRange(1, 1000))
@client_options
@pass_state
def schedule(
    state: State, dag_id: str, count: int, url: str | None, token: str | None, as_json: bool
) -> None:
    """Show DAG_ID's schedule in words and its next run times, in its zone and in UTC.

    A time reads as the DAG's zone shows it, with the zone's name
    (2024-03-31 03:00 CEST), beside the same instant in UTC.

    Example: ppacer schedule hello -n 5
    """
    with connect(state, url, token) as client:
        points = client.schedule_preview(dag_id, count)
        dag = client.get_dag(dag_id).to_json()
    if as_json:
        click.echo(json.dumps(points))
        return
    words = schedule_words(dag)
    if not points:
        click.echo(f"{dag_id} has no scheduled runs ({words})")
        return
    if dag["paused"]:
        click.echo(
            f"{dag_id} is paused: no run is created until `ppacer dags unpause {dag_id}` "
            "(then missed points follow its catch-up policy)",
            err=True,
        )
    zone = _zone(dag)
    whole_minutes = all(parse_ts(p["utc"]).second == 0 for p in points)
    fmt = "%Y-%m-%d %H:%M" if whole_minutes else "%Y-%m-%d %H:%M:%S"
    click.echo(f"{dag_id}: {words}; the next {len(points)} run times")
    local_column = f"local ({zone.key})" if zone is not None and zone.key != "UTC" else "local"
    print_table((local_column, "UTC"), [readable_point(p, zone, fmt) for p in points])


@click.command()
@client_options
@pass_state
def executors(state: State, url: str | None, token: str | None, as_json: bool) -> None:
    """List the executors the scheduler has heard from, most recent first.

    Example: ppacer executors
    """
    with connect(state, url, token) as client:
        items = fetch_all(lambda limit, offset: client.list_executors(limit, offset).to_json())
    if as_json:
        echo_json(items)
        return
    print_table(
        ("executor", "last seen (s ago)", "running", "capacity", "first seen (UTC)"),
        [
            [
                e["name"],
                f"{e['lastSeenAgoS']:.1f}",
                e["running"],
                e["capacity"],
                short_ts(e["firstSeen"]),
            ]
            for e in items
        ],
    )


DAG_COMMANDS = [dags, schedule, executors]
