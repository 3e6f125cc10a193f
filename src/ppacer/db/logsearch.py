"""Full-text search over task logs: one query interface over SQLite FTS5 and PostgreSQL.

The index is made by the logs DB's revision ``0003_log_search``: an
external-content FTS5 table kept in sync by triggers on SQLite, a GIN index on
a ``simple`` text-search vector on PostgreSQL. Both see the same words: runs
of letters and digits, case folded, accents kept.

A query is words, all of which must occur (``timeout db``); ``"quoted words"``
must occur in that order, next to each other; a trailing ``*`` matches a word
by its start (``conn*``). A word with punctuation inside (``db.example.com``)
is the phrase of its parts, as the index saw it. Nothing a user types is
query syntax beyond that, so no input is a syntax error.

Hits come newest first, filtered by DAG, task, lowest level and time range,
a page at a time; every query is served by the full-text index and bounded by
its ``limit`` and ``offset``:

- SQLite: in the FTS5 index's own rowid order (the order rows were written),
  which it reads backwards without sorting, stopping at the page's end;
- PostgreSQL: by time, in windows going back from the newest record (the
  first hour, then each window four times the last) until the page is full or
  the records end. Each window is a GIN lookup combined with the time index,
  so a common word stops after the first window and a word found nowhere costs
  a handful of index probes; one query over all records would sort every
  match, or walk the time index row by row when the planner misjudges how
  rare a word is (measured: up to 1.1 s and 3.2 s over 1,000,000 lines).

Where a hit sits in its attempt's log (the line number the log view anchors)
is :func:`line_position`: one count over the attempt's index range.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Row, text

from ppacer.gotime import timestamp_forms
from ppacer.timeutils import format_ts, parse_ts

__all__ = [
    "LEVEL_RANK",
    "MAX_TERMS",
    "LogFilters",
    "LogHit",
    "LogSearchPage",
    "Term",
    "levels_at_least",
    "line_position",
    "parse_query",
    "postgres_tsquery",
    "search_logs",
    "sqlite_match",
]

#: Log levels by rank; a level filter keeps its level and those above it. ``WARN`` and
#: ``FATAL`` are the original Go executor's names.
LEVEL_RANK = {
    "DEBUG": 10,
    "INFO": 20,
    "WARN": 30,
    "WARNING": 30,
    "ERROR": 40,
    "CRITICAL": 50,
    "FATAL": 50,
}
#: Terms of a query at most (more are ignored): bounds the work of one search.
MAX_TERMS = 16
# PostgreSQL: the first time window searched, and how much each next one grows.
_FIRST_WINDOW = timedelta(hours=1)
_WINDOW_GROWTH = 4
_COLUMNS = '"DagId", "ExecTs", "TaskId", "Retry", "InsertTs", "Level", "Message", "Seq"'
# A word: letters and digits (``_`` separates, as in FTS5's unicode61 and the PG index).
_WORD = re.compile(r"[^\W_]+")
# A quoted phrase, or a run of anything but spaces.
_PART = re.compile(r'"([^"]*)"?|(\S+)')


@dataclass(frozen=True, slots=True)
class Term:
    """One term of a query: its words in order (a phrase if several); ``prefix``: the
    last word matches words starting with it."""

    words: tuple[str, ...]
    prefix: bool = False


def parse_query(query: str) -> tuple[Term, ...]:
    """The terms of what a user typed (at most :data:`MAX_TERMS`); () if it has no words."""
    terms: list[Term] = []
    for match in _PART.finditer(query):
        quoted, bare = match.groups()
        raw = quoted if quoted is not None else bare
        words = tuple(w.lower() for w in _WORD.findall(raw))
        if words:
            terms.append(Term(words, prefix=quoted is None and raw.endswith("*")))
        if len(terms) == MAX_TERMS:
            break
    return tuple(terms)


def sqlite_match(terms: Sequence[Term]) -> str:
    """The FTS5 ``MATCH`` expression of ``terms``: each a quoted string, all required."""
    return " AND ".join(f'"{" ".join(t.words)}"' + ("*" if t.prefix else "") for t in terms)


def postgres_tsquery(terms: Sequence[Term]) -> str:
    """The ``to_tsquery`` text of ``terms``: phrases with ``<->``, prefixes with ``:*``."""
    parts = []
    for t in terms:
        words = [f"'{w}'" for w in t.words]
        if t.prefix:
            words[-1] += ":*"
        parts.append("(" + " <-> ".join(words) + ")")
    return " & ".join(parts)


def levels_at_least(level: str) -> list[str]:
    """The level names of ``level``'s rank and above (``WARNING``: WARN, WARNING, ERROR, ...)."""
    rank = LEVEL_RANK.get(level.upper())
    if rank is None:
        raise ValueError(f"unknown log level {level!r}: one of {', '.join(LEVEL_RANK)}")
    return [name for name, r in LEVEL_RANK.items() if r >= rank]


@dataclass(frozen=True, slots=True)
class LogFilters:
    """What narrows a search besides its words (None: any)."""

    dag_id: str | None = None
    task_id: str | None = None
    # The lowest level shown (see :func:`levels_at_least`).
    min_level: str | None = None
    # Stored timestamps (text order is time order): logged at or after ``from_ts``,
    # before ``to_ts``.
    from_ts: str | None = None
    to_ts: str | None = None


@dataclass(frozen=True, slots=True)
class LogHit:
    """A log record found: its attempt, when, level and message as stored."""

    dag_id: str
    exec_ts: str
    task_id: str
    retry: int
    insert_ts: str
    level: str
    message: str
    # The record's number in its attempt when an executor shipped it (else None).
    seq: int | None
    # SQLite's rowid (orders records of the same microsecond); None on PostgreSQL.
    rowid: int | None


@dataclass(frozen=True, slots=True)
class LogSearchPage:
    """A page of hits, newest first, and whether a next page has any."""

    hits: list[LogHit]
    has_more: bool


def _where(filters: LogFilters, params: dict[str, Any], column: str) -> list[str]:
    """SQL conditions of ``filters`` on the ``tasklogs`` columns (``column`` formats a name)."""
    out = []
    if filters.dag_id is not None:
        out.append(f"{column.format('DagId')} = :dag_id")
        params["dag_id"] = filters.dag_id
    if filters.task_id is not None:
        out.append(f"{column.format('TaskId')} = :task_id")
        params["task_id"] = filters.task_id
    if filters.min_level is not None:
        names = levels_at_least(filters.min_level)
        keys = [f"level_{i}" for i in range(len(names))]
        out.append(f"{column.format('Level')} IN ({', '.join(':' + k for k in keys)})")
        params.update(zip(keys, names, strict=True))
    if filters.from_ts is not None:
        out.append(f"{column.format('InsertTs')} >= :from_ts")
        params["from_ts"] = filters.from_ts
    if filters.to_ts is not None:
        out.append(f"{column.format('InsertTs')} < :to_ts")
        params["to_ts"] = filters.to_ts
    return out


def search_logs(
    conn: Connection,
    query: str | Sequence[Term],
    filters: LogFilters = LogFilters(),
    *,
    limit: int = 50,
    offset: int = 0,
) -> LogSearchPage:
    """Log records matching ``query`` and ``filters``, newest first, one page.

    ``query`` is text as a user types it (see the module's docstring) or parsed
    terms; without a word it finds nothing. One more hit than ``limit`` is read
    to tell whether there is a next page (an exact count of a common word over
    millions of records would cost more than the page).
    """
    terms = parse_query(query) if isinstance(query, str) else tuple(query)
    if not terms:
        return LogSearchPage([], False)
    rows: Sequence[Row[Any]]
    if conn.dialect.name == "postgresql":
        rows = _search_postgres(conn, terms, filters, limit + 1 + offset)[offset:]
    else:
        rows = _search_sqlite(conn, terms, filters, limit + 1, offset)
    hits = [
        LogHit(r.DagId, r.ExecTs, r.TaskId, r.Retry, r.InsertTs, r.Level, r.Message, r.Seq, r.rk)
        for r in rows[:limit]
    ]
    return LogSearchPage(hits, len(rows) > limit)


def _search_sqlite(
    conn: Connection, terms: Sequence[Term], filters: LogFilters, limit: int, offset: int
) -> Sequence[Row[Any]]:
    params: dict[str, Any] = {"q": sqlite_match(terms), "limit": limit, "offset": offset}
    where = ["tasklogs_fts MATCH :q", *_where(filters, params, 't."{}"')]
    columns = ", ".join(f"t.{c}" for c in _COLUMNS.split(", "))
    # CROSS JOIN: the FTS5 index drives (SQLite keeps the join order as written), so
    # hits come in its rowid order with no sort, and stop at the page's end.
    sql = (
        f"SELECT t.rowid AS rk, {columns} "
        "FROM tasklogs_fts CROSS JOIN tasklogs AS t ON t.rowid = tasklogs_fts.rowid "
        f"WHERE {' AND '.join(where)} "
        "ORDER BY tasklogs_fts.rowid DESC LIMIT :limit OFFSET :offset"
    )
    return conn.execute(text(sql), params).all()


def _search_postgres(
    conn: Connection, terms: Sequence[Term], filters: LogFilters, need: int
) -> list[Row[Any]]:
    """The ``need`` newest matches, window by window (see the module's docstring)."""
    params: dict[str, Any] = {"q": postgres_tsquery(terms)}
    where = [
        "\"MessageWords\" @@ to_tsquery('simple'::regconfig, :q)",
        *_where(filters, params, '"{}"'),
    ]
    oldest, newest = conn.execute(
        text('SELECT min("InsertTs"), max("InsertTs") FROM tasklogs')
    ).one()
    if newest is None:
        return []
    floor = max(oldest, filters.from_ts or oldest)
    try:
        top = parse_ts(min(newest, filters.to_ts) if filters.to_ts else newest)
    except ValueError:  # a record's time in no known form: search everything at once
        top, floor = None, ""
    rows: list[Row[Any]] = []
    upper: str | None = None
    span = _FIRST_WINDOW
    while len(rows) < need:
        lower = format_ts(top - span) if top is not None else ""
        window, bounds = list(where), dict(params, limit=need - len(rows))
        if lower > floor:
            window.append('"InsertTs" >= :lower')
            bounds["lower"] = lower
        if upper is not None:
            window.append('"InsertTs" < :upper')
            bounds["upper"] = upper
        # MATERIALIZED: the window's matches are found by the indexes, then sorted. Given
        # the LIMIT, the planner would walk the time index row by row instead, betting on
        # early matches, and lose it on a rare word (measured: 300-500 ms per window).
        sql = (
            f"WITH found AS MATERIALIZED (SELECT ctid AS row_at, {_COLUMNS} FROM tasklogs "
            f"WHERE {' AND '.join(window)}) "
            f"SELECT NULL AS rk, {_COLUMNS} FROM found "
            'ORDER BY "InsertTs" DESC, row_at DESC LIMIT :limit'
        )
        rows += conn.execute(text(sql), bounds).all()
        if lower <= floor:
            break
        upper, span = lower, span * _WINDOW_GROWTH
    return rows


def line_position(conn: Connection, hit: LogHit, exec_ts: str | None = None) -> int:
    """The hit's line number (from 0) in its attempt's log, in the order the log view reads.

    That order is :func:`ppacer.db.tasklogs.read_task_log_lines`': by ``Seq``, then
    time, then (SQLite) rowid; SQLite sorts NULL ``Seq`` first, PostgreSQL last.
    ``exec_ts`` is the run's stored timestamp (rows of the original's executor may
    carry another text of it); one count over the attempt's index range.
    """
    forms = timestamp_forms(exec_ts or hit.exec_ts)
    params: dict[str, Any] = {
        "dag_id": hit.dag_id,
        "task_id": hit.task_id,
        "retry": hit.retry,
        "ts": hit.insert_ts,
        "seq": hit.seq,
        "rk": hit.rowid,
    }
    params.update({f"e{i}": form for i, form in enumerate(forms)})
    exec_in = ", ".join(f":e{i}" for i in range(len(forms)))
    if conn.dialect.name == "postgresql":
        # No rowid: records of one microsecond without a Seq tie (the log view's order too).
        before = '"Seq" < :seq' if hit.seq is not None else '"Seq" IS NOT NULL OR "InsertTs" < :ts'
    elif hit.seq is not None:
        before = '"Seq" IS NULL OR "Seq" < :seq'
    else:
        before = '"Seq" IS NULL AND ("InsertTs" < :ts OR ("InsertTs" = :ts AND rowid < :rk))'
    sql = (
        'SELECT count(*) FROM tasklogs WHERE "DagId" = :dag_id AND "ExecTs" IN ('
        + exec_in
        + ') AND "TaskId" = :task_id AND "Retry" = :retry AND ('
        + before
        + ")"
    )
    return int(conn.execute(text(sql), params).scalar() or 0)
