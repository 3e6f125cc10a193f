"""Schema migrations: where a database stands, and moving it to this ppacer's schema.

A database is in one of these states, per history (scheduler DB, logs DB):

- **empty**: none of ppacer's tables; ``upgrade`` creates them at the latest revision
  from the models (:mod:`ppacer.db.fresh`: what every revision would make, without
  loading Alembic);
- **legacy**: ppacer's tables as written before migrations (commit ca465ca), no
  version table; ``upgrade`` stamps the baseline revision, then applies the rest;
- **versioned**: at a revision of this ppacer's history, the head or an older one;
- **newer**: at a revision this ppacer does not know (a newer ppacer wrote it):
  refused, with the message to upgrade ppacer;
- **unknown**: some of ppacer's tables but not the baseline's set: refused.

``upgrade`` is serialised: under a PostgreSQL advisory lock (transaction-scoped,
so two schedulers starting at once on one database upgrade it once) or, for
SQLite, an exclusive lock on a file beside the database; the whole upgrade is
one transaction on both. An up-to-date database costs one query
(:func:`ensure_schema`'s fast path reads the version table) and a new one no
Alembic: only an older database loads it. Downgrades are not provided.
"""

from __future__ import annotations

import contextlib
import fcntl
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, inspect, text

from ppacer.db import migrations
from ppacer.db.fresh import create_fresh
from ppacer.db.schema import (
    LOGS_VERSION_TABLE,
    SCHEDULER_VERSION_TABLE,
    logs_metadata,
    metadata,
)
from ppacer.errors import PpacerError

__all__ = [
    "LOGS_DB",
    "LOG_SEARCH_OBJECTS",
    "SCHEDULER_DB",
    "DbState",
    "History",
    "SchemaError",
    "ensure_schema",
    "read_state",
    "schema_drift",
    "upgrade",
]

_HERE = Path(migrations.__file__).parent
BASELINE = "0001_baseline"
#: The logs DB's full-text search objects (revision 0003_log_search), not in the models:
#: the FTS5 table, its shadow tables and triggers (SQLite); the generated vector column,
#: its GIN index and the time index (PostgreSQL).
#: :func:`schema_drift` ignores them by name, as it ignores other histories' tables.
LOG_SEARCH_OBJECTS = frozenset(
    {
        "tasklogs_fts",
        "tasklogs_fts_data",
        "tasklogs_fts_idx",
        "tasklogs_fts_docsize",
        "tasklogs_fts_config",
        "tasklogs_fts_insert",
        "tasklogs_fts_delete",
        "tasklogs_fts_update",
        "MessageWords",
        "ix_tasklogs_message_fts",
        "ix_tasklogs_insert_ts",
    }
)


class SchemaError(PpacerError):
    """A database's schema is not one this ppacer can use (or upgrade)."""


@dataclass(frozen=True, slots=True)
class History:
    """One database's migration history."""

    name: str
    directory: Path
    version_table: str
    # Every revision, oldest first (a test checks them against the scripts).
    revisions: tuple[str, ...]
    # The tables of the baseline: their presence without a version table is a legacy DB.
    baseline_tables: frozenset[str]
    # The models the latest revision must agree with.
    models: MetaData

    @property
    def head(self) -> str:
        """The latest revision."""
        return self.revisions[-1]


SCHEDULER_DB = History(
    name="scheduler",
    directory=_HERE / "scheduler",
    version_table=SCHEDULER_VERSION_TABLE,
    revisions=(BASELINE, "0002_attempt_executor", "0003_leadership", "0004_runs_by_exec"),
    baseline_tables=frozenset(
        {
            "dags",
            "dagtasks",
            "dagruns",
            "dagruntasks",
            "dagruntaskerrors",
            "dagruntaskoutputs",
            "dagrunparams",
            "schedules",
            "dagrunrestarts",
            "dagpauses",
            "dagrunevents",
            "backfills",
            "backfillruns",
            "schemaversion",
        }
    ),
    models=metadata,
)
LOGS_DB = History(
    name="logs",
    directory=_HERE / "logs",
    version_table=LOGS_VERSION_TABLE,
    revisions=(BASELINE, "0002_log_seq", "0003_log_search"),
    baseline_tables=frozenset({"tasklogs"}),
    models=logs_metadata,
)


@dataclass(frozen=True, slots=True)
class DbState:
    """Where one database stands in one history."""

    history: str
    # The recorded revision (None: not versioned).
    revision: str | None
    head: str
    # "empty", "legacy", "versioned", "newer" or "unknown" (see the module's docstring).
    kind: str
    # Revisions ``upgrade`` would apply, in order (a legacy DB is stamped at the baseline).
    pending: tuple[str, ...] = ()
    # What is wrong, for "newer" and "unknown".
    problem: str = ""

    @property
    def is_current(self) -> bool:
        """Whether the database has this ppacer's schema."""
        return self.kind == "versioned" and self.revision == self.head

    def describe(self) -> str:
        """One line: where it stands and what ``ppacer db upgrade`` would do."""
        if self.is_current:
            return f"at {self.revision} (the latest); nothing to upgrade"
        if self.kind in ("newer", "unknown"):
            return self.problem
        steps = ", ".join(self.pending)
        if self.kind == "empty":
            return f"empty; `ppacer db upgrade` would create the tables ({steps})"
        if self.kind == "legacy":
            then = f", then apply {', '.join(self.pending[1:])}" if len(self.pending) > 1 else ""
            return (
                f"a database of ppacer before migrations; `ppacer db upgrade` would record it "
                f"at {BASELINE}{then}"
            )
        return f"at {self.revision}; `ppacer db upgrade` would apply {steps}"


def _recorded_revision(conn: Connection, history: History) -> str | None:
    if not inspect(conn).has_table(history.version_table):
        return None
    row = conn.execute(text(f"SELECT version_num FROM {history.version_table}")).first()
    return str(row[0]) if row is not None else None


def _revisions(history: History) -> list[str]:
    """Every revision of the history's scripts, oldest first (``History.revisions`` has them)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(history.directory))
    return [s.revision for s in reversed(list(scripts.walk_revisions()))]


def _state(conn: Connection, history: History) -> DbState:
    revisions = list(history.revisions)
    head = history.head
    revision = _recorded_revision(conn, history)
    if revision is not None:
        if revision not in revisions:
            return DbState(
                history.name,
                revision,
                head,
                "newer",
                problem=(
                    f"the {history.name} DB is at revision {revision}, which this ppacer does "
                    f"not know (its latest is {head}): a newer ppacer upgraded it; "
                    "upgrade ppacer (databases are not downgraded)"
                ),
            )
        pending = tuple(revisions[revisions.index(revision) + 1 :])
        return DbState(history.name, revision, head, "versioned", pending)
    present = set(inspect(conn).get_table_names()) & (
        history.baseline_tables | set(history.models.tables)
    )
    if not present:
        return DbState(history.name, None, head, "empty", tuple(revisions))
    missing = history.baseline_tables - present
    if missing:
        return DbState(
            history.name,
            None,
            head,
            "unknown",
            problem=(
                f"the {history.name} DB has some of ppacer's tables ({', '.join(sorted(present))}) "
                f"but not {', '.join(sorted(missing))} and no version table: not a ppacer "
                "database this version knows; refusing to change it"
            ),
        )
    return DbState(history.name, None, head, "legacy", tuple(revisions))


def read_state(engine: Engine, history: History) -> DbState:
    """Where ``engine``'s database stands in ``history`` (changes nothing)."""
    with engine.connect() as conn:
        return _state(conn, history)


@contextlib.contextmanager
def _serialised(engine: Engine, history: History) -> Iterator[Connection]:
    """A transaction that no other ppacer upgrading the same database runs beside."""
    with contextlib.ExitStack() as stack:
        database = engine.url.database
        if engine.dialect.name == "sqlite" and database and database != ":memory:":
            lock = stack.enter_context(open(f"{database}.ppacer-upgrade.lock", "a+b"))
            fcntl.flock(lock, fcntl.LOCK_EX)
        conn = stack.enter_context(engine.begin())
        if engine.dialect.name == "postgresql":
            key = zlib.crc32(f"ppacer:{history.version_table}".encode())
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        yield conn


def upgrade(engine: Engine, history: History) -> tuple[DbState, DbState]:
    """Move the database to the head of ``history``; return its state before and after.

    Safe to repeat; serialised against other ppacer processes; one transaction.
    A newer or unknown database raises :class:`SchemaError` and is not changed.
    An empty database is made from the models (:mod:`ppacer.db.fresh`), any
    other by the migrations.
    """
    with _serialised(engine, history) as conn:
        before = _state(conn, history)
        if before.kind in ("newer", "unknown"):
            raise SchemaError(before.problem)
        if before.kind == "empty":
            create_fresh(conn, history.models, history.version_table, history.head)
        elif not before.is_current:
            _migrate(conn, history, legacy=before.kind == "legacy")
        after = _state(conn, history)
    return before, after


def _migrate(conn: Connection, history: History, *, legacy: bool) -> None:
    """Run the history's migrations to its head on ``conn`` (stamping a legacy database first)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(history.directory))
    config.attributes["connection"] = conn
    if legacy:
        command.stamp(config, BASELINE)
    command.upgrade(config, "head")


def schema_drift(engine: Engine, history: History) -> list[str]:
    """How the database's tables differ from this ppacer's models, one line each.

    Empty for a database at the head that nobody altered by hand; CI checks that
    a database made by the migrations has none (the models and the latest
    revision agree). Tables of other histories sharing the database are ignored, and so
    are the logs DB's full-text search objects (:data:`LOG_SEARCH_OBJECTS`).
    """
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    ours = set(history.models.tables) | history.baseline_tables
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, _parent: (
                    name not in LOG_SEARCH_OBJECTS and (kind != "table" or name in ours)
                ),
            },
        )
        diffs = compare_metadata(context, history.models)
    return [_describe_diff(d) for d in diffs]


def _describe_diff(diff: Any) -> str:
    if isinstance(diff, list):  # column changes come as lists of one
        diff = diff[0]
    kind = diff[0]
    if kind == "add_table":
        return f"missing table {diff[1].name}"
    if kind == "remove_table":
        return f"table {diff[1].name} is not in this ppacer's schema"
    if kind == "add_column":
        return f"missing column {diff[2]}.{diff[3].name}"
    if kind == "remove_column":
        return f"column {diff[2]}.{diff[3].name} is not in this ppacer's schema"
    if kind in ("add_index", "remove_index"):
        what = "missing" if kind == "add_index" else "extra"
        return f"{what} index {diff[1].name} on {diff[1].table.name}"
    if kind == "modify_type":
        return f"column {diff[2]}.{diff[3]} has type {diff[5]}, expected {diff[6]}"
    if kind == "modify_nullable":
        return f"column {diff[2]}.{diff[3]} nullable is {diff[5]}, expected {diff[6]}"
    return f"{kind}: {diff[1:]}"


def ensure_schema(engine: Engine, history: History, *, may_upgrade: bool, where: str) -> None:
    """Make sure the database has this ppacer's schema, upgrading it if allowed.

    ``where`` names the database in messages (secrets masked). Without
    ``may_upgrade`` an older schema raises :class:`SchemaError` with the
    command that upgrades it.
    """
    with engine.connect() as conn:
        if _fast_revision(conn, history) == history.head:
            return
    if may_upgrade:
        upgrade(engine, history)
        return
    state = read_state(engine, history)
    if state.is_current:
        return
    if state.kind in ("newer", "unknown"):
        raise SchemaError(state.problem)
    flag = "--db" if history is SCHEDULER_DB else "--logs-db"
    raise SchemaError(
        f"the {history.name} DB {where} is {state.describe()}; run "
        f"`ppacer db upgrade {flag} {where}` first (started with --no-upgrade)"
    )


def _fast_revision(conn: Connection, history: History) -> Any:
    """The recorded revision, read with one query (None if there is no version table)."""
    try:
        row = conn.execute(text(f"SELECT version_num FROM {history.version_table}")).first()
    except Exception:  # no version table (yet): the slow path says what the database is
        conn.rollback()
        return None
    return row[0] if row is not None else None
