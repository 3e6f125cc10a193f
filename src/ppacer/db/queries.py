"""Reads behind the API's lists and the command line: task attempts, and schema checks.

The run lists and log pages are shared with the web UI (:mod:`ppacer.db.ui_queries`);
what only the API and ``ppacer db check`` need lives here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, MetaData, and_, func, inspect, select, text

from ppacer.dag.status import TaskStatus
from ppacer.db.dagruntasks import DagRunTaskRow
from ppacer.db.schema import SCHEMA_VERSION, dagruntasks, logs_metadata, metadata, schemaversion

__all__ = ["SchemaReport", "check_logs_schema", "check_scheduler_schema", "read_task_attempts"]


def read_task_attempts(
    conn: Connection, dag_id: str, exec_ts: str, task_id: str
) -> list[DagRunTaskRow]:
    """Every attempt of one task in one run, oldest first (served by the primary key)."""
    rows = conn.execute(
        select(dagruntasks)
        .where(
            and_(
                dagruntasks.c.DagId == dag_id,
                dagruntasks.c.ExecTs == exec_ts,
                dagruntasks.c.TaskId == task_id,
            )
        )
        .order_by(dagruntasks.c.Retry)
    )
    return [
        DagRunTaskRow(
            r.DagId,
            r.ExecTs,
            r.TaskId,
            r.Retry,
            r.InsertTs,
            TaskStatus(r.Status),
            r.StatusUpdateTs,
            r.Version,
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class SchemaReport:
    """What ``ppacer db check`` found in one database."""

    # Version stored in ``schemaversion`` (None: not stamped, or no such table).
    version: int | None
    # Version this ppacer expects (None for the logs DB, which has no version).
    expected_version: int | None
    missing_tables: list[str]
    # ``table.column`` names the code needs and the database lacks.
    missing_columns: list[str]

    @property
    def is_ok(self) -> bool:
        """Whether this ppacer can use the database as it is."""
        return (
            not self.missing_tables
            and not self.missing_columns
            and self.version == self.expected_version
        )


def _missing(engine: Engine, meta: MetaData) -> tuple[list[str], list[str]]:
    inspector = inspect(engine)
    present = set(inspector.get_table_names())
    tables = [t for t in meta.tables if t not in present]
    columns: list[str] = []
    for name, table in meta.tables.items():
        if name in present:
            have = {c["name"] for c in inspector.get_columns(name)}
            columns.extend(f"{name}.{c.name}" for c in table.columns if c.name not in have)
    return tables, columns


def check_scheduler_schema(engine: Engine) -> SchemaReport:
    """Compare the scheduler DB with the tables and schema version this ppacer expects."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    tables, columns = _missing(engine, metadata)
    version = None
    if "schemaversion" not in tables:
        with engine.connect() as conn:
            version = conn.execute(select(func.max(schemaversion.c.Version))).scalar()
    return SchemaReport(version, SCHEMA_VERSION, tables, columns)


def check_logs_schema(engine: Engine) -> SchemaReport:
    """Compare the logs DB with the tables this ppacer expects (it has no version)."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    tables, columns = _missing(engine, logs_metadata)
    return SchemaReport(None, None, tables, columns)
