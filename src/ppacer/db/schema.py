"""The scheduler DB and logs DB tables, with every column explained.

Table and column names are the original ppacer's, so its documented queries
(``SELECT * FROM dagruns`` ...) work on our databases as written. Every
timestamp is text in :func:`ppacer.timeutils.format_ts` form (UTC, six fraction
digits), so text order is time order.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "LOGS_VERSION_TABLE",
    "SCHEDULER_VERSION_TABLE",
    "SCHEMA_VERSION",
    "backfillruns",
    "backfills",
    "dagpauses",
    "dagrunevents",
    "dagrunparams",
    "dagrunrestarts",
    "dagruns",
    "dagruntaskerrors",
    "dagruntaskoutputs",
    "dagruntasks",
    "dagruntaskstarts",
    "dags",
    "dagtasks",
    "logs_metadata",
    "metadata",
    "schedulerleader",
    "schedules",
    "schemaversion",
    "tasklogs",
]

#: Schema version ppacer recorded in ``schemaversion`` before migrations (still 1: the
#: Alembic revision in the version tables below is what counts now).
SCHEMA_VERSION = 1
#: Alembic's version table of the scheduler DB, and of the logs DB (both may share a
#: PostgreSQL database; see :mod:`ppacer.db.migrations`).
SCHEDULER_VERSION_TABLE = "alembic_version"
LOGS_VERSION_TABLE = "alembic_version_logs"

metadata = MetaData()

dags = Table(
    "dags",
    metadata,
    Column("DagId", Text, primary_key=True, comment="DAG id, unique"),
    Column("StartTs", Text, nullable=True, comment="schedule start; NULL: no schedule"),
    Column("Schedule", Text, nullable=True, comment="schedule in words, e.g. 'FixedSchedule: 10s'"),
    Column("CreateTs", Text, nullable=False, comment="when the DAG was first synced"),
    Column(
        "LatestUpdateTs", Text, nullable=True, comment="when its metadata or tasks last changed"
    ),
    Column("CreateVersion", Text, nullable=False, comment="ppacer version that created the row"),
    Column(
        "LatestUpdateVersion", Text, nullable=True, comment="ppacer version of the latest update"
    ),
    Column(
        "HashDagMeta", Text, nullable=False, comment="sha256 of id, schedule, start, attributes"
    ),
    Column(
        "HashTasks", Text, nullable=False, comment="sha256 of tasks: ids, types, configs, edges"
    ),
    Column("Attributes", Text, nullable=False, comment="JSON: {catchUp, tags}"),
)

dagtasks = Table(
    "dagtasks",
    metadata,
    Column("DagId", Text, nullable=False, comment="DAG id"),
    Column("TaskId", Text, nullable=False, comment="task id within the DAG"),
    Column("IsCurrent", Integer, nullable=False, comment="1 for the version in use, 0 for history"),
    Column("InsertTs", Text, nullable=False, comment="when this version was stored"),
    Column("PosDepth", Integer, nullable=False, comment="graph depth, root = 1 (deepest path)"),
    Column("PosWidth", Integer, nullable=False, comment="position within its depth level, from 1"),
    Column("Version", Text, nullable=False, comment="ppacer version that stored the row"),
    Column("TaskTypeName", Text, nullable=False, comment="the task's class (or function) name"),
    Column("TaskConfig", Text, nullable=False, comment="JSON task config (timeout, retries, ...)"),
    Column("TaskBodyHash", Text, nullable=False, comment="sha256 of TaskBodySource"),
    Column("TaskBodySource", Text, nullable=False, comment="source code of the task's execute"),
    Column(
        "CodeVersion",
        Text,
        nullable=True,
        comment="what an executor must have to run the task: hash of the source and the "
        "explicit task and DAG versions (NULL for rows stored before ppacer recorded it)",
    ),
    # Many versions of one task may exist; only one is current.
    Index("ix_dagtasks_dag_task", "DagId", "TaskId", "IsCurrent"),
)

dagruns = Table(
    "dagruns",
    metadata,
    Column("RunId", Integer, primary_key=True, autoincrement=True, comment="run id"),
    Column("DagId", Text, nullable=False, comment="DAG id"),
    Column("ExecTs", Text, nullable=False, comment="logical (schedule) time of the run"),
    Column("InsertTs", Text, nullable=False, comment="when the run was created"),
    Column("Status", Text, nullable=False, comment="DagRunStatus"),
    Column("StatusUpdateTs", Text, nullable=False, comment="when Status last changed"),
    Column("Version", Text, nullable=False, comment="ppacer version that created the run"),
    UniqueConstraint("DagId", "ExecTs", name="uq_dagruns_dag_exec"),
    # Runs by status; and of every DAG by logical time, newest first (GET /dag/run/list).
    Index("ix_dagruns_status_exec", "Status", "ExecTs"),
    Index("ix_dagruns_exec", "ExecTs"),
    sqlite_autoincrement=True,
)

dagruntasks = Table(
    "dagruntasks",
    metadata,
    Column("DagId", Text, nullable=False, comment="DAG id"),
    Column("ExecTs", Text, nullable=False, comment="the run's ExecTs"),
    Column("TaskId", Text, nullable=False, comment="task id"),
    Column("Retry", Integer, nullable=False, comment="attempt number, from 0"),
    Column("InsertTs", Text, nullable=False, comment="when the attempt was scheduled"),
    Column("Status", Text, nullable=False, comment="TaskStatus"),
    Column("StatusUpdateTs", Text, nullable=False, comment="when Status last changed"),
    Column("Version", Text, nullable=False, comment="ppacer version"),
    PrimaryKeyConstraint("DagId", "ExecTs", "TaskId", "Retry", name="pk_dagruntasks"),
    Index("ix_dagruntasks_status", "Status"),
)

dagruntaskstarts = Table(
    "dagruntaskstarts",
    metadata,
    Column("DagId", Text, nullable=False, comment="DAG id"),
    Column("ExecTs", Text, nullable=False, comment="the run's ExecTs"),
    Column("TaskId", Text, nullable=False, comment="task id"),
    Column("Retry", Integer, nullable=False, comment="attempt number"),
    Column(
        "StartTs",
        Text,
        nullable=False,
        comment="when an executor took the attempt (dagruntasks.InsertTs: when it was queued)",
    ),
    Column(
        "Executor",
        Text,
        nullable=True,
        comment="the executor that took it (NULL: a client that did not name itself)",
    ),
    Column(
        "CodeVersion",
        Text,
        nullable=True,
        comment="the task's code version it ran (NULL: unknown, an executor that announced "
        "no versions)",
    ),
    PrimaryKeyConstraint("DagId", "ExecTs", "TaskId", "Retry", name="pk_dagruntaskstarts"),
)

dagruntaskerrors = Table(
    "dagruntaskerrors",
    metadata,
    Column("DagId", Text, nullable=False, comment="DAG id"),
    Column("ExecTs", Text, nullable=False, comment="the run's ExecTs"),
    Column("TaskId", Text, nullable=False, comment="task id"),
    Column("Retry", Integer, nullable=False, comment="attempt number"),
    Column("InsertTs", Text, nullable=False, comment="when the error was reported"),
    Column("Error", Text, nullable=False, comment="error as reported: 'Type: message'"),
    PrimaryKeyConstraint("DagId", "ExecTs", "TaskId", "Retry", name="pk_dagruntaskerrors"),
)

dagruntaskoutputs = Table(
    "dagruntaskoutputs",
    metadata,
    Column("DagId", Text, nullable=False, comment="DAG id"),
    Column("ExecTs", Text, nullable=False, comment="the run's ExecTs"),
    Column("TaskId", Text, nullable=False, comment="task id"),
    Column("Retry", Integer, nullable=False, comment="the attempt that returned the value"),
    Column("InsertTs", Text, nullable=False, comment="when the value was reported"),
    Column("Value", Text, nullable=False, comment="the returned value as JSON (size-limited)"),
    PrimaryKeyConstraint("DagId", "ExecTs", "TaskId", "Retry", name="pk_dagruntaskoutputs"),
)

dagrunparams = Table(
    "dagrunparams",
    metadata,
    Column("RunId", Integer, primary_key=True, autoincrement=False, comment="dagruns.RunId"),
    Column("Params", Text, nullable=False, comment="JSON object given at trigger"),
)

schedules = Table(
    "schedules",
    metadata,
    Column("DagId", Text, nullable=False, comment="DAG id"),
    Column("InsertTs", Text, nullable=False, comment="when the decision was made"),
    Column(
        "Event", Text, nullable=False, comment="ScheduleEvent: REGULAR, CAUGHT_UP, SKIPPED, ..."
    ),
    Column("ScheduleTs", Text, nullable=True, comment="the schedule point decided on"),
    Column(
        "NextScheduleTs",
        Text,
        nullable=True,
        comment="the next point; for SKIPPED, the first point after the skipped range",
    ),
    Index("ix_schedules_dag_ts", "DagId", "ScheduleTs"),
)

dagrunrestarts = Table(
    "dagrunrestarts",
    metadata,
    Column("DagId", Text, nullable=False, comment="DAG id"),
    Column("ExecTs", Text, nullable=False, comment="the run's ExecTs"),
    Column("Restart", Integer, nullable=False, comment="restart number, from 1"),
    Column("InsertTs", Text, nullable=False, comment="when the run was restarted"),
    PrimaryKeyConstraint("DagId", "ExecTs", "Restart", name="pk_dagrunrestarts"),
)

dagpauses = Table(
    "dagpauses",
    metadata,
    Column("DagId", Text, primary_key=True, comment="DAG id"),
    Column("IsPaused", Integer, nullable=False, comment="1: the DAG creates no scheduled runs"),
    Column("UpdateTs", Text, nullable=False, comment="when it was (un)paused"),
    Column("UpdatedBy", Text, nullable=False, comment="who (un)paused it"),
    Column(
        "ResumeTs",
        Text,
        nullable=True,
        comment="the next point when it was paused, for a DAG with no schedules history yet",
    ),
)

dagrunevents = Table(
    "dagrunevents",
    metadata,
    Column("RunId", Integer, nullable=False, comment="dagruns.RunId"),
    Column("InsertTs", Text, nullable=False, comment="when it happened"),
    Column("Action", Text, nullable=False, comment="TRIGGER, RESTART, CLEAR, MARK_SUCCESS, ..."),
    Column("TaskId", Text, nullable=True, comment="the task acted on, if any"),
    Column("Actor", Text, nullable=False, comment="who did it (API caller's name)"),
    Column("Detail", Text, nullable=False, comment="JSON with the action's arguments"),
    Index("ix_dagrunevents_run", "RunId", "InsertTs"),
)

backfills = Table(
    "backfills",
    metadata,
    Column("BackfillId", Integer, primary_key=True, autoincrement=True, comment="backfill id"),
    Column("DagId", Text, nullable=False, comment="DAG id"),
    Column("FromTs", Text, nullable=False, comment="first logical time, inclusive"),
    Column("ToTs", Text, nullable=False, comment="last logical time, inclusive"),
    Column("MaxActiveRuns", Integer, nullable=False, comment="runs of this backfill at once"),
    Column("NextTs", Text, nullable=True, comment="next point to create; NULL: all created"),
    Column("Status", Text, nullable=False, comment="RUNNING, SUCCESS, FAILED"),
    Column("InsertTs", Text, nullable=False, comment="when it was requested"),
    Column("UpdateTs", Text, nullable=False, comment="when it last changed"),
    Column("Actor", Text, nullable=False, comment="who requested it"),
    sqlite_autoincrement=True,
)

backfillruns = Table(
    "backfillruns",
    metadata,
    Column("BackfillId", Integer, nullable=False, comment="backfills.BackfillId"),
    Column("RunId", Integer, nullable=False, comment="dagruns.RunId created by it"),
    PrimaryKeyConstraint("BackfillId", "RunId", name="pk_backfillruns"),
)

schedulerleader = Table(
    "schedulerleader",
    metadata,
    Column("Id", Integer, primary_key=True, autoincrement=False, comment="always 1: one row"),
    Column("Holder", Text, nullable=True, comment="the leading scheduler (host:pid); NULL: none"),
    Column(
        "Epoch",
        BigInteger,
        nullable=False,
        comment="incremented at each acquisition; the leader's writes check it (fencing)",
    ),
    Column(
        "LeaseUntil",
        DateTime(timezone=True),
        nullable=True,
        comment="when the leadership lapses unless renewed, by the database's clock",
    ),
    Column("Url", Text, nullable=True, comment="the leader's API, for standbys to proxy to"),
    Column("CodeHash", Text, nullable=True, comment="hash of the leader's DAG code"),
    Column(
        "Secret",
        Text,
        nullable=False,
        comment="hex secret lease tokens are derived from (the same for every scheduler)",
    ),
    Column("UpdateTs", Text, nullable=True, comment="when the row last changed"),
)

schemaversion = Table(
    "schemaversion",
    metadata,
    Column("Version", Integer, nullable=False, comment="schema version in this database"),
    Column("InsertTs", Text, nullable=False, comment="when it was applied"),
)

logs_metadata = MetaData()

tasklogs = Table(
    "tasklogs",
    logs_metadata,
    Column("DagId", Text, nullable=False, comment="DAG id"),
    Column("ExecTs", Text, nullable=False, comment="the run's ExecTs"),
    Column("TaskId", Text, nullable=False, comment="task id"),
    Column("Retry", Integer, nullable=False, comment="attempt number"),
    Column("InsertTs", Text, nullable=False, comment="when the record was logged"),
    Column("Level", Text, nullable=False, comment="INFO, WARNING, ERROR, ..."),
    Column("Message", Text, nullable=False, comment="the formatted message"),
    Column("Attributes", Text, nullable=False, comment="JSON of the record's extra attributes"),
    Column(
        "Seq",
        Integer,
        nullable=True,
        comment="the record's number within its attempt, from 0, for records shipped by "
        "executors over the API (stored once: a re-sent record is a duplicate); NULL for "
        "records a logging handler wrote straight into this table",
    ),
    # No key on InsertTs: records in the same microsecond never collide (rowid orders them).
    Index("ix_tasklogs_attempt", "DagId", "ExecTs", "TaskId", "Retry"),
    # NULLs never collide in a unique index, on SQLite and PostgreSQL alike.
    Index("uq_tasklogs_attempt_seq", "DagId", "ExecTs", "TaskId", "Retry", "Seq", unique=True),
)
