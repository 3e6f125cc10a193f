"""Log search: one query interface, the same answers on SQLite (FTS5) and PostgreSQL.

Each test runs on a fresh logs DB made by the migrations, on both databases:
words, phrases and prefixes; filters; newest first in pages; retention
(deleting rows) empties the index; the line numbers the log view anchors; any
text typed is a query, never a syntax error; rows written before the index
existed are found after the upgrade.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, insert, text

from ppacer.db.engine import database_url, open_logs_db
from ppacer.db.logsearch import (
    LogFilters,
    levels_at_least,
    line_position,
    parse_query,
    postgres_tsquery,
    search_logs,
    sqlite_match,
)
from ppacer.db.migrate import LOGS_DB, schema_drift
from ppacer.db.schema import tasklogs
from ppacer.db.tasklogs import read_task_log_lines
from ppacer.timeutils import format_ts

T0 = datetime(2024, 3, 11, 12, tzinfo=UTC)
RUN = format_ts(T0)


def row(
    message: str,
    *,
    n: int,
    task: str = "load",
    level: str = "INFO",
    dag: str = "etl",
    exec_ts: str = RUN,
    retry: int = 0,
    seq: int | None = None,
) -> dict[str, Any]:
    return {
        "DagId": dag,
        "ExecTs": exec_ts,
        "TaskId": task,
        "Retry": retry,
        "InsertTs": format_ts(T0 + timedelta(seconds=n)),
        "Level": level,
        "Message": message,
        "Attributes": "{}",
        "Seq": seq,
    }


LINES = [
    row("Connecting to db.example.com:5432 as etl_user", n=0, task="extract"),
    row("Processed 120 rows from /tmp/data.csv", n=1, task="extract"),
    row("timeout after 30s waiting for lock; retrying", n=2, level="WARNING"),
    row("Connection refused by db.example.com", n=3, level="ERROR"),
    row("connection pool refused a new connection", n=4, level="WARNING"),
    row("Déjà vu: résumé of run 7", n=5, task="report"),
    row("processed 99 rows", n=6, dag="other", task="extract"),
    row("CONNECTING again; processed_total=5", n=7, task="report", level="DEBUG"),
]


@pytest.fixture(params=["sqlite", "postgres"])
def logs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A logs DB at the head revision, filled with :data:`LINES`."""
    if request.param == "sqlite":
        target = str(tmp_path / "logs.db")
    else:
        request.applymarker(pytest.mark.postgres)
        target = request.getfixturevalue("pg_url")
    engine = open_logs_db(target)
    with engine.begin() as conn:
        conn.execute(insert(tasklogs), LINES)
    yield engine
    engine.dispose()


def found(engine: Engine, query: str, filters: LogFilters | None = None, **page: int) -> list[str]:
    with engine.connect() as conn:
        hits = search_logs(conn, query, filters or LogFilters(), **page).hits
    return [h.message for h in hits]


def test_words_phrases_and_prefixes_find_the_same_lines_on_both_databases(logs: Engine) -> None:
    # Every word must occur, case folded, newest first.
    assert found(logs, "connection refused") == [LINES[4]["Message"], LINES[3]["Message"]]
    assert found(logs, "CONNECTION REFUSED") == found(logs, "connection refused")
    # Quoted: next to each other, in order.
    assert found(logs, '"connection refused"') == [LINES[3]["Message"]]
    assert found(logs, '"refused connection"') == []
    # A word with punctuation inside is the phrase of its parts, as the index saw it.
    assert found(logs, "db.example.com") == [LINES[3]["Message"], LINES[0]["Message"]]
    assert found(logs, "example") == found(logs, "db.example.com")
    assert found(logs, "data.csv") == [LINES[1]["Message"]]
    assert found(logs, "etl_user") == [LINES[0]["Message"]]  # "_" separates words
    # A trailing * matches words by their start.
    assert found(logs, "connect*") == [
        LINES[7]["Message"],
        LINES[4]["Message"],
        LINES[3]["Message"],
        LINES[0]["Message"],
    ]
    assert found(logs, "processed") == [
        LINES[7]["Message"],
        LINES[6]["Message"],
        LINES[1]["Message"],
    ]
    # Accents are kept (as PostgreSQL's simple configuration keeps them).
    assert found(logs, "résumé") == [LINES[5]["Message"]]
    assert found(logs, "zebra") == [] and found(logs, "") == [] and found(logs, "!!") == []


def test_filters_by_dag_task_lowest_level_and_time(logs: Engine) -> None:
    assert found(logs, "processed", LogFilters(dag_id="other")) == [LINES[6]["Message"]]
    assert found(logs, "processed", LogFilters(dag_id="etl", task_id="extract")) == [
        LINES[1]["Message"]
    ]
    assert found(logs, "connect*", LogFilters(min_level="WARNING")) == [
        LINES[4]["Message"],
        LINES[3]["Message"],
    ]
    assert found(logs, "connect*", LogFilters(min_level="ERROR")) == [LINES[3]["Message"]]
    window = LogFilters(
        from_ts=format_ts(T0 + timedelta(seconds=3)), to_ts=format_ts(T0 + 7 * timedelta(seconds=1))
    )
    assert found(logs, "connect*", window) == [LINES[4]["Message"], LINES[3]["Message"]]
    assert levels_at_least("warning") == ["WARN", "WARNING", "ERROR", "CRITICAL", "FATAL"]
    with pytest.raises(ValueError, match="unknown log level"):
        levels_at_least("LOUD")


def test_hits_come_newest_first_a_page_at_a_time(logs: Engine) -> None:
    many = [row(f"step {i} of the backfill", n=100 + i, seq=i, task="backfill") for i in range(120)]
    with logs.begin() as conn:
        conn.execute(insert(tasklogs), many)
        first = search_logs(conn, "backfill", limit=50)
        second = search_logs(conn, "backfill", limit=50, offset=50)
        last = search_logs(conn, "backfill", limit=50, offset=100)
    assert [h.seq for h in first.hits] == list(range(119, 69, -1)) and first.has_more
    assert [h.seq for h in second.hits] == list(range(69, 19, -1)) and second.has_more
    assert [h.seq for h in last.hits] == list(range(19, -1, -1)) and not last.has_more


def test_deleting_log_rows_removes_them_from_the_index(logs: Engine) -> None:
    """Retention deletes from tasklogs; the index follows (SQLite: triggers)."""
    assert len(found(logs, "connection")) == 2
    with logs.begin() as conn:
        conn.execute(tasklogs.delete().where(tasklogs.c.Level == "ERROR"))
        conn.execute(
            tasklogs.update().where(tasklogs.c.Level == "WARNING").values(Message="rewritten words")
        )
    assert found(logs, "connection") == []
    assert found(logs, "rewritten") == ["rewritten words", "rewritten words"]
    if logs.dialect.name == "sqlite":
        with logs.begin() as conn:  # the external-content index agrees with its table
            conn.exec_driver_sql(
                "INSERT INTO tasklogs_fts(tasklogs_fts, rank) VALUES ('integrity-check', 1)"
            )


def test_a_hits_line_number_is_its_place_in_the_log_view(logs: Engine) -> None:
    """The number is the offset at which the log view (read_task_log_lines) shows the line."""
    attempt = dict(task="big", exec_ts=format_ts(T0 + timedelta(days=1)))
    shipped = [row(f"shipped line {i}", n=200 + i, seq=i, **attempt) for i in range(6)]
    # Rows a handler wrote straight into the table (no Seq), some in the same microsecond.
    direct = [row(f"direct line {i}", n=300 + i // 2, **attempt) for i in range(5)]
    with logs.begin() as conn:
        conn.execute(insert(tasklogs), shipped)
        conn.execute(insert(tasklogs), direct)
    with logs.connect() as conn:
        view = [
            line.message
            for line in read_task_log_lines(conn, "etl", attempt["exec_ts"], "big", 0, limit=100)
        ]
        for query in ("shipped", "direct"):
            hits = search_logs(conn, query, limit=20).hits
            assert len(hits) == 6 if query == "shipped" else 5
            for hit in hits:
                at = line_position(conn, hit)
                if logs.dialect.name == "postgresql" and hit.seq is None:
                    # No rowid: lines of one microsecond keep no order; the line is one of them.
                    ties = [m for m in view if m.startswith("direct")]
                    assert view[at] in ties
                else:
                    assert view[at] == hit.message, (query, hit.message, at)


@pytest.mark.parametrize(
    "typed",
    [
        '"',
        '""',
        "a AND",
        "OR",
        "NOT x",
        "NEAR(a b)",
        "x:y",
        "^start",
        "-minus",
        "(",
        ")",
        "*",
        "a*b",
        "' OR 1=1 --",
        "col:word",
        "\x00",
        "🙂 emoji",
        "ü",
        "'quoted'",
        "a\\b",
        "%_",
        "{}",
    ],
)
def test_any_text_is_a_query_never_a_syntax_error(logs: Engine, typed: str) -> None:
    with logs.connect() as conn:
        search_logs(conn, typed, LogFilters(dag_id="etl"))  # no exception
    terms = parse_query(typed)
    assert all(w.isalnum() for t in terms for w in t.words)


def test_queries_are_built_from_words_only() -> None:
    terms = parse_query('Timeout "db example" conn* x-y')
    assert sqlite_match(terms) == '"timeout" AND "db example" AND "conn"* AND "x y"'
    assert postgres_tsquery(terms) == (
        "('timeout') & ('db' <-> 'example') & ('conn':*) & ('x' <-> 'y')"
    )
    assert len(parse_query(" ".join(f"w{i}" for i in range(40)))) == 16


def test_rows_written_before_the_index_are_found_after_the_upgrade(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    for backend in ("sqlite", "postgres"):
        if backend == "postgres":
            target = request.getfixturevalue("pg_url")
        else:
            target = str(tmp_path / "old.db")
        engine = create_engine(database_url(target))
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(LOGS_DB.directory))
            config.attributes["connection"] = conn
            command.upgrade(config, "0002_log_seq")
            conn.execute(
                insert(tasklogs.c.DagId.table), [{k: v for k, v in r.items()} for r in LINES[:4]]
            )
        upgraded = open_logs_db(target)
        assert found(upgraded, "db.example.com") == [LINES[3]["Message"], LINES[0]["Message"]]
        assert schema_drift(upgraded, LOGS_DB) == []
        upgraded.dispose()
        engine.dispose()


@pytest.mark.postgres
def test_postgres_serves_searches_from_its_indexes_and_takes_huge_messages(pg_url: str) -> None:
    engine = open_logs_db(pg_url)
    huge = " ".join(f"w{i}" for i in range(300_000))  # ~2.2 MB: the vector covers its head
    with engine.begin() as conn:
        conn.execute(insert(tasklogs), [row(huge, n=1), *LINES])
        conn.exec_driver_sql("ANALYZE tasklogs")
    assert found(engine, "w12") == [huge] and found(engine, "w299999") == []
    with engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                text(
                    'EXPLAIN SELECT 1 FROM tasklogs WHERE "MessageWords" @@ '
                    "to_tsquery('simple'::regconfig, 'refused')"
                )
            )
        )
    assert "ix_tasklogs_message_fts" in plan
    engine.dispose()
