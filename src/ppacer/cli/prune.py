"""``ppacer prune``: delete finished runs older than an age, with their attempts and logs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from sqlalchemy import Engine

from ppacer.cli.common import EXIT_USAGE, State, describe_error, echo_json, fail, print_table
from ppacer.db.engine import open_logs_db, open_scheduler_db
from ppacer.db.retention import PruneResult, give_space_back, prune, vacuum
from ppacer.errors import PpacerError
from ppacer.redact import redact_url, redact_urls
from ppacer.timeutils import format_ts

__all__ = ["PRUNE_COMMANDS", "parse_age"]

pass_state = click.make_pass_decorator(State, ensure=True)

_AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([dhms]?)\s*")
_UNIT_S = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "": 86400.0}
# How long a write of this command waits for a lock a running scheduler holds, in seconds.
_WAIT_S = 10.0


def parse_age(value: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``3600s`` or a number of days (``7``, ``0.5``)."""
    match = _AGE.fullmatch(value)
    if match is None or float(match[1]) <= 0:
        raise click.BadParameter(
            f"{value!r} is not an age: a positive number with d, h, m or s (days without), "
            "e.g. 30d or 12h",
            param_hint="--older-than",
        )
    return timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])


def _open(target: str, opener: str) -> Engine:
    if "://" not in target and target != ":memory:" and not Path(target).exists():
        fail(f"{target} does not exist")
    if opener == "scheduler":
        return open_scheduler_db(target, upgrade=False, busy_timeout_s=_WAIT_S)
    return open_logs_db(target, upgrade=False)


def _print(result: PruneResult, dry_run: bool) -> None:
    verb = "would delete" if dry_run else "deleted"
    rows = [[verb + " runs", result.runs]]
    if not dry_run:
        rows += [
            ["deleted task attempts", result.attempts],
            ["deleted log lines", result.log_lines],
            ["batches", result.batches],
        ]
        if result.skipped:
            rows.append(["kept (changed meanwhile)", result.skipped])
    for space in result.space:
        shown = f"{space.freed_bytes / 2**20:.1f} MiB given back"
        if space.kept_bytes:
            shown += f", {space.kept_bytes / 2**20:.1f} MiB free in the file"
        if space.note:
            shown += f" ({space.note})"
        rows.append([redact_url(space.database), shown])
    print_table(("", f"finished before {result.cutoff}"), rows)


@click.command("prune")
@click.option(
    "--older-than",
    "older_than",
    default=None,
    metavar="AGE",
    help="Delete runs that finished longer ago than AGE: 30d, 12h, 90m, 3600s, or days "
    "(default: scheduler.retention_days from the settings).",
)
@click.option("--db", default=None, help="Scheduler DB: SQLite path or postgresql:// URL.")
@click.option("--logs-db", default=None, help="Task logs DB: path or URL.")
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=None,
    help="Runs per transaction (default: scheduler.retention_batch, 100).",
)
@click.option("--dry-run", is_flag=True, help="Count the runs that would go; delete nothing.")
@click.option(
    "--vacuum",
    "full_vacuum",
    is_flag=True,
    help="Then rewrite SQLite files in incremental-vacuum mode (once: a full VACUUM that "
    "holds the database while it copies it); on PostgreSQL, VACUUM the tables.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_state
def prune_command(
    state: State,
    older_than: str | None,
    db: str | None,
    logs_db: str | None,
    batch: int | None,
    dry_run: bool,
    full_vacuum: bool,
    as_json: bool,
) -> None:
    """Delete finished DAG runs older than an age, with their task attempts and logs.

    Runs that are not finished (SUCCESS or FAILED) are never deleted, nor runs of a
    backfill that still runs. Works in batches, each a short transaction: safe
    while a scheduler runs on the same databases. Space freed in SQLite files is
    given back to the file system when the file is in incremental-vacuum mode
    (see --vacuum). A scheduler does the same by itself with the setting
    scheduler.retention_days.

    Example: ppacer prune --older-than 30d
    """
    settings = state.settings(db=db, logs_db=logs_db)
    config = settings.scheduler
    if older_than is not None:
        age = parse_age(older_than)
    elif config.retention_days is not None:
        age = timedelta(days=config.retention_days)
    else:
        click.echo(
            "error: say how old: --older-than AGE (e.g. 30d), or set scheduler.retention_days",
            err=True,
        )
        raise SystemExit(EXIT_USAGE)
    cutoff = format_ts(datetime.now(UTC) - age)
    engines: list[Engine] = []
    try:
        engine = _open(settings.db, "scheduler")
        engines.append(engine)
        logs_engine = engine
        if settings.logs_db != settings.db:
            logs_engine = _open(settings.logs_db, "logs")
            engines.append(logs_engine)
        result = prune(
            engine, logs_engine, cutoff, batch=batch or config.retention_batch, dry_run=dry_run
        )
        if not dry_run:
            step = vacuum if full_vacuum else give_space_back
            result.space = [step(e) for e in engines]
    except PpacerError as exc:
        fail(redact_urls(str(exc)))
    except Exception as exc:
        fail(redact_urls(describe_error(exc)))
    finally:
        for opened in engines:
            opened.dispose()
    if as_json:
        echo_json({**result.to_json(), "dryRun": dry_run})
    else:
        _print(result, dry_run)


PRUNE_COMMANDS = [prune_command]
