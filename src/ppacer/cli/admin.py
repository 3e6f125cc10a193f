"""Local commands: ``db upgrade|check``, ``validate`` and ``config show``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from sqlalchemy import create_engine

from ppacer.cli.common import State, describe_error, echo_json, fail, print_table
from ppacer.cli.loader import validate_target
from ppacer.db.engine import database_url, open_logs_db, open_scheduler_db
from ppacer.db.queries import SchemaReport, check_logs_schema, check_scheduler_schema
from ppacer.errors import PpacerError
from ppacer.settings import describe_settings

__all__ = ["ADMIN_COMMANDS"]

pass_state = click.make_pass_decorator(State, ensure=True)


def _db_options(fn: Any) -> Any:
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)
    fn = click.option("--logs-db", default=None, help="Task logs DB: path or URL.")(fn)
    return click.option(
        "--db", default=None, help="Scheduler DB: SQLite path or postgresql:// URL."
    )(fn)


def _report_json(name: str, target: str, report: SchemaReport | None) -> dict[str, Any]:
    if report is None:
        return {"db": name, "target": target, "ok": False, "problems": ["does not exist"]}
    return {
        "db": name,
        "target": target,
        "ok": report.is_ok,
        "version": report.version,
        "expectedVersion": report.expected_version,
        "problems": _problems(report),
    }


def _problems(report: SchemaReport) -> list[str]:
    problems = [f"missing table {t}" for t in report.missing_tables]
    problems += [f"missing column {c}" for c in report.missing_columns]
    if report.expected_version is not None and report.version != report.expected_version:
        if report.version is None:
            problems.append("no schema version recorded")
        elif report.version > report.expected_version:
            problems.append(
                f"schema version {report.version} is newer than this ppacer's "
                f"({report.expected_version}): upgrade ppacer"
            )
        else:
            problems.append(
                f"schema version {report.version} is older than {report.expected_version}: "
                "run `ppacer db upgrade`"
            )
    return problems


def _check(target: str, logs: bool) -> SchemaReport | None:
    url = database_url(target)
    if url.startswith("sqlite") and target != ":memory:" and not Path(target).exists():
        return None
    engine = create_engine(url)
    try:
        return check_logs_schema(engine) if logs else check_scheduler_schema(engine)
    finally:
        engine.dispose()


def _print_reports(results: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        echo_json(results)
        return
    rows = []
    for r in results:
        state = "ok" if r["ok"] else "; ".join(r["problems"])
        version = r.get("version")
        rows.append([r["db"], r["target"], "" if version is None else version, state])
    print_table(("database", "target", "schema version", "state"), rows)


@click.group()
def db() -> None:
    """Create, upgrade and check the databases."""


@db.command("upgrade")
@_db_options
@pass_state
def db_upgrade(state: State, db: str | None, logs_db: str | None, as_json: bool) -> None:
    """Create the databases' tables, or bring an older schema up to this ppacer's.

    Safe to run again: it changes nothing in an up-to-date database. Without
    --db / --logs-db: scheduler.db and logs.db in the current directory (as
    `ppacer run` uses); --db postgresql://user@host/dbname for PostgreSQL.

    Example: ppacer db upgrade
    """
    settings = state.settings(db=db, logs_db=logs_db)
    try:
        open_scheduler_db(settings.db).dispose()
        open_logs_db(settings.logs_db).dispose()
        results = [
            _report_json("scheduler", settings.db, _check(settings.db, logs=False)),
            _report_json("logs", settings.logs_db, _check(settings.logs_db, logs=True)),
        ]
    except PpacerError as exc:
        fail(str(exc))
    except Exception as exc:
        fail(describe_error(exc))
    _print_reports(results, as_json)
    if not all(r["ok"] for r in results):
        raise SystemExit(1)


@db.command("check")
@_db_options
@pass_state
def db_check(state: State, db: str | None, logs_db: str | None, as_json: bool) -> None:
    """Check that the databases exist and have this ppacer's schema (changes nothing).

    Exits 1 when a database is missing, unreachable or needs `ppacer db upgrade`.

    Example: ppacer db check
    """
    settings = state.settings(db=db, logs_db=logs_db)
    try:
        results = [
            _report_json("scheduler", settings.db, _check(settings.db, logs=False)),
            _report_json("logs", settings.logs_db, _check(settings.logs_db, logs=True)),
        ]
    except Exception as exc:
        fail(f"cannot read the database: {describe_error(exc)}")
    _print_reports(results, as_json)
    if not all(r["ok"] for r in results):
        raise SystemExit(1)


@click.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def validate(target: str, as_json: bool) -> None:
    """Load the DAGs in TARGET (a .py file or module) and report every validation error.

    Exits 1 if there is any (for CI); changes no database.

    Example: ppacer validate ppacer.examples.hello   (or your own: ppacer validate dags.py)
    """
    found = validate_target(target)
    if as_json:
        echo_json({"ok": not found.errors, "dags": found.dag_ids, "errors": found.errors})
    else:
        for error in found.errors:
            click.echo(f"error: {error}")
        ids = ", ".join(found.dag_ids) or "none"
        if found.errors:
            click.echo(f"{len(found.errors)} error(s); valid DAGs: {ids}")
        else:
            click.echo(f"{len(found.dag_ids)} DAG(s) valid: {ids}")
    if found.errors:
        raise SystemExit(1)


@click.group()
def config() -> None:
    """Show the effective configuration."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_state
def config_show(state: State, as_json: bool) -> None:
    """Print every setting's effective value and where it came from (secrets masked).

    Precedence: defaults < ppacer.toml (or --config / PPACER_CONFIG) < PPACER_* env < flags.

    Example: PPACER_PORT=8080 ppacer config show
    """
    _settings, rows = state.settings_with_sources()
    shown = describe_settings(rows)
    if as_json:
        echo_json(shown)
    else:
        print_table(
            ("key", "value", "source"), [[r["key"], r["value"], r["source"]] for r in shown]
        )


ADMIN_COMMANDS = [db, validate, config]
