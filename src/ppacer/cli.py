"""The ``ppacer`` command line: run DAGs, and talk to a running scheduler.

Exit codes: 0 ok, 1 the scheduler refused or failed, 2 bad usage. Commands that
talk to a scheduler take ``--url`` (or ``PPACER_URL``).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from ppacer.dag.dag import Registry
from ppacer.errors import PpacerError
from ppacer.executor.client import Client
from ppacer.timeutils import parse_ts

__all__ = ["load_registry", "main"]

_F = TypeVar("_F", bound=Callable[..., Any])


def load_registry(target: str) -> Registry:
    """Load the DAG registry from a Python file or module.

    The module must define a :class:`Registry` at top level (any name; ``dags``
    is preferred when there are several).
    """
    if target.endswith(".py") or Path(target).is_file():
        path = Path(target).resolve()
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise click.BadParameter(f"cannot load {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    found = {k: v for k, v in vars(module).items() if isinstance(v, Registry)}
    if not found:
        raise click.BadParameter(f"{target} defines no ppacer.Registry at top level")
    return found.get("dags") or next(iter(found.values()))


def _client_options(fn: _F) -> _F:
    fn = click.option(
        "--url",
        envvar="PPACER_URL",
        default="http://127.0.0.1:9321",
        show_default=True,
        help="scheduler URL (env PPACER_URL)",
    )(fn)
    return click.option("--json", "as_json", is_flag=True, help="print JSON")(fn)


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_ts(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


def _call(url: str, action: Callable[[Client], Any]) -> Any:
    try:
        with Client(url) as client:
            return action(client)
    except PpacerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@click.group()
@click.version_option(package_name="ppacer")
def main() -> None:
    """ppacer: DAGs of Python tasks on a schedule."""


@main.command()
@click.argument("target")
@click.option("--db", default="scheduler.db", show_default=True, help="scheduler DB path or URL")
@click.option("--logs-db", default="logs.db", show_default=True, help="logs DB path or URL")
@click.option("--port", default=9321, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--concurrency", default=8, show_default=True, type=int)
def run(target: str, db: str, logs_db: str, port: int, host: str, concurrency: int) -> None:
    """Run a scheduler and an executor for the DAGs in TARGET (a .py file or a module)."""
    from ppacer.local import run as run_local

    run_local(load_registry(target), db, logs_db, port, host=host, concurrency=concurrency)


@main.command()
@click.argument("dag_id")
@click.option("--params", default=None, help="JSON object of run parameters")
@click.option("--at", default=None, help="logical time (e.g. 2024-03-11T12:00:00Z); default now")
@_client_options
def trigger(dag_id: str, params: str | None, at: str | None, url: str, as_json: bool) -> None:
    """Start a run of DAG_ID."""
    try:
        parsed = json.loads(params) if params else None
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--params") from None
    if parsed is not None and not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--params")
    answer = _call(url, lambda c: c.trigger_dag_run(dag_id, parsed, _time(at, "--at")))
    click.echo(
        json.dumps(answer)
        if as_json
        else f"run {answer['runId']} of {dag_id} at {answer['execTs']}"
    )


@main.command()
@click.argument("dag_id")
@click.option("-n", "count", default=10, show_default=True, type=click.IntRange(1, 1000))
@_client_options
def schedule(dag_id: str, count: int, url: str, as_json: bool) -> None:
    """Show DAG_ID's next run times, in its zone and in UTC."""
    points = _call(url, lambda c: c.schedule_preview(dag_id, count))
    if as_json:
        click.echo(json.dumps(points))
        return
    if not points:
        click.echo(f"{dag_id} has no scheduled runs")
    for p in points:
        click.echo(f"{p['local']:<32}  {p['utc']}")


@main.command()
@click.argument("dag_id")
@click.option("--from", "start", required=True, help="first logical time (inclusive)")
@click.option("--to", "end", required=True, help="last logical time (inclusive)")
@click.option("--max-active-runs", default=4, show_default=True, type=click.IntRange(1))
@_client_options
def backfill(
    dag_id: str, start: str, end: str, max_active_runs: int, url: str, as_json: bool
) -> None:
    """Run DAG_ID's schedule points from --from to --to, in order."""
    first, last = _time(start, "--from"), _time(end, "--to")
    assert first is not None and last is not None
    answer = _call(url, lambda c: c.backfill(dag_id, first, last, max_active_runs))
    click.echo(
        json.dumps(answer) if as_json else f"backfill {answer['backfillId']} of {dag_id} started"
    )


@main.group()
def dags() -> None:
    """Pause and unpause DAGs."""


@dags.command()
@click.argument("dag_id")
@_client_options
def pause(dag_id: str, url: str, as_json: bool) -> None:
    """Pause DAG_ID: no new scheduled runs."""
    _call(url, lambda c: c.pause_dag(dag_id))
    click.echo(json.dumps({"dagId": dag_id, "paused": True}) if as_json else f"{dag_id} paused")


@dags.command()
@click.argument("dag_id")
@_client_options
def unpause(dag_id: str, url: str, as_json: bool) -> None:
    """Unpause DAG_ID; missed points follow its catch-up policy."""
    _call(url, lambda c: c.unpause_dag(dag_id))
    click.echo(json.dumps({"dagId": dag_id, "paused": False}) if as_json else f"{dag_id} unpaused")


if __name__ == "__main__":
    main()
