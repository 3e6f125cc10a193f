"""Local commands: ``db upgrade|check``, ``validate`` and ``config show``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from sqlalchemy import Engine, create_engine

from ppacer.cli.common import State, describe_error, echo_json, fail, print_table
from ppacer.cli.loader import validate_target
from ppacer.db.engine import database_url
from ppacer.db.migrate import (
    LOGS_DB,
    SCHEDULER_DB,
    DbState,
    History,
    read_state,
    schema_drift,
    upgrade,
)
from ppacer.errors import PpacerError
from ppacer.redact import redact_url, redact_urls
from ppacer.settings import describe_settings

__all__ = ["ADMIN_COMMANDS"]

pass_state = click.make_pass_decorator(State, ensure=True)


def _db_options(fn: Any) -> Any:
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)
    fn = click.option("--logs-db", default=None, help="Task logs DB: path or URL.")(fn)
    return click.option(
        "--db", default=None, help="Scheduler DB: SQLite path or postgresql:// URL."
    )(fn)


def _engine(target: str) -> Engine | None:
    """An engine on ``target``, or None when it is a SQLite file that does not exist."""
    url = database_url(target)
    if url.startswith("sqlite") and target != ":memory:" and not Path(target).exists():
        return None
    return create_engine(url)


def _state_json(
    history: History, target: str, state: DbState | None, drift: list[str] | None = None
) -> dict[str, Any]:
    shown = redact_url(target)
    if state is None:
        return {
            "db": history.name,
            "target": shown,
            "ok": False,
            "revision": None,
            "head": history.head,
            "state": "missing",
            "pending": [],
            "problems": ["does not exist"],
            "message": "does not exist; `ppacer db upgrade` would create it",
        }
    problems = list(drift or [])
    if not state.is_current:
        problems.insert(0, state.describe())
    return {
        "db": history.name,
        "target": shown,
        "ok": not problems,
        "revision": state.revision,
        "head": state.head,
        "state": state.kind,
        "pending": list(state.pending),
        "problems": problems,
        "message": "; ".join(problems) if problems else state.describe(),
    }


def _print_states(results: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        echo_json(results)
        return
    rows = [[r["db"], r["target"], r["revision"] or "", r["message"]] for r in results]
    print_table(("database", "target", "revision", "state"), rows)


@click.group()
def db() -> None:
    """Create, upgrade and check the databases (Alembic migrations; no downgrades)."""


@db.command("upgrade")
@_db_options
@pass_state
def db_upgrade(state: State, db: str | None, logs_db: str | None, as_json: bool) -> None:
    """Create the databases' tables, or bring an older schema up to this ppacer's.

    Safe to run again: it changes nothing in an up-to-date database; two at
    once on one database upgrade it once. A database of ppacer from before
    migrations is recognised and upgraded with every row kept. Without --db /
    --logs-db: scheduler.db and logs.db in the current directory (as `ppacer
    run` uses); --db postgresql://user@host/dbname for PostgreSQL. Databases
    are never downgraded.

    Example: ppacer db upgrade
    """
    settings = state.settings(db=db, logs_db=logs_db)
    results = []
    for history, target in ((SCHEDULER_DB, settings.db), (LOGS_DB, settings.logs_db)):
        try:
            engine = create_engine(database_url(target))
        except PpacerError as exc:
            fail(f"{history.name} DB {redact_url(target)}: {exc}")
        try:
            before, after = upgrade(engine, history)
        except PpacerError as exc:
            fail(f"{history.name} DB {redact_url(target)}: {exc}")
        except Exception as exc:
            fail(f"{history.name} DB {redact_url(target)}: {redact_urls(describe_error(exc))}")
        finally:
            engine.dispose()
        row = _state_json(history, target, after)
        row["applied"] = list(before.pending) if not before.is_current else []
        row["message"] = (
            f"upgraded to {after.revision} (applied {', '.join(row['applied'])})"
            if row["applied"]
            else after.describe()
        )
        results.append(row)
    _print_states(results, as_json)


@db.command("check")
@_db_options
@pass_state
def db_check(state: State, db: str | None, logs_db: str | None, as_json: bool) -> None:
    """Say which revision each database is at and what `ppacer db upgrade` would do.

    Changes nothing. Exits 1 when a database is missing, unreachable, older
    than this ppacer (run `ppacer db upgrade`) or newer (upgrade ppacer).

    Example: ppacer db check
    """
    settings = state.settings(db=db, logs_db=logs_db)
    results = []
    for history, target in ((SCHEDULER_DB, settings.db), (LOGS_DB, settings.logs_db)):
        try:
            engine = _engine(target)
            try:
                found = read_state(engine, history) if engine is not None else None
                drift = (
                    schema_drift(engine, history)
                    if engine is not None and found is not None and found.is_current
                    else []
                )
            finally:
                if engine is not None:
                    engine.dispose()
        except PpacerError as exc:
            fail(f"cannot read the {history.name} DB {redact_url(target)}: {exc}")
        except Exception as exc:
            fail(
                f"cannot read the {history.name} DB {redact_url(target)}: "
                f"{redact_urls(describe_error(exc))}"
            )
        results.append(_state_json(history, target, found, drift))
    _print_states(results, as_json)
    if not all(r["ok"] for r in results):
        if not as_json:
            click.echo(f"error: {_check_advice(results, db, logs_db)}", err=True)
        raise SystemExit(1)


def _check_advice(results: list[dict[str, Any]], db: str | None, logs_db: str | None) -> str:
    """What to do about the databases ``db check`` found wanting, as one line."""
    wanting = [r for r in results if not r["ok"]]
    names = " and ".join(f"the {r['db']} DB" for r in wanting)
    has, needs = ("have", "need") if len(wanting) > 1 else ("has", "needs")
    if any(r["state"] in ("newer", "unknown") for r in results):
        return f"{names}: see above (a database of a newer ppacer needs a newer ppacer)"
    flags = "".join(
        f" {flag} {redact_url(value)}"
        for flag, value in (("--db", db), ("--logs-db", logs_db))
        if value is not None
    )
    if all(r["state"] in ("missing", "empty") for r in results if not r["ok"]):
        return f"{names} {has} no tables yet: run ppacer db upgrade{flags} to create them"
    return f"{names} {needs} an upgrade: run ppacer db upgrade{flags}"


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
