"""``ppacer prune``: finished runs older than an age go, with their attempts and logs.

The command runs on the databases as a user has them (SQLite files in the
working directory, or a PostgreSQL database); the runs are seeded with their
timestamps in the past.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import Engine

from ppacer.db.engine import open_logs_db, open_scheduler_db
from ppacer.db.schema import dagruns, dagruntasks, tasklogs
from tests.db.test_retention import (
    Seed,
    auto_vacuum,
    checkpoint,
    count,
    found_in_logs,
    make_mode_none,
    seed_runs,
)

Cli = Callable[..., Result]


def ago(days: float, status: str = "SUCCESS", **kw: object) -> Seed:
    """A run of DAG "etl" that got ``status`` ``days`` ago (by the wall clock: the command's)."""
    at = datetime.now(UTC) - timedelta(days=days)
    return Seed("etl", at - timedelta(minutes=1), status, at, **kw)  # type: ignore[arg-type]


SEEDS = [
    ago(100, word="ancient"),
    ago(50, "FAILED", word="ancient"),
    ago(200, "RUNNING"),
    ago(10),
    ago(0.1),
]


@pytest.fixture
def sqlite_dbs(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """``scheduler.db`` and ``logs.db`` in the working directory (the defaults), seeded."""
    engine = open_scheduler_db(str(tmp_path / "scheduler.db"))
    logs_engine = open_logs_db(str(tmp_path / "logs.db"))
    seed_runs(engine, logs_engine, SEEDS)
    try:
        yield engine, logs_engine
    finally:
        engine.dispose()
        logs_engine.dispose()


def test_prune_deletes_finished_runs_older_than_the_age(ppacer_cli: Cli, sqlite_dbs) -> None:
    engine, logs_engine = sqlite_dbs

    result = ppacer_cli("prune", "--older-than", "30d")

    assert result.exit_code == 0, result.output
    assert "deleted runs" in result.output and "deleted log lines" in result.output
    assert count(engine, dagruns) == 3  # the RUNNING one (200 days old) and two recent
    assert count(engine, dagruntasks) == 6
    assert found_in_logs(logs_engine, "ancient") == 0
    assert found_in_logs(logs_engine, "keepme") == 18


def test_prune_json_counts_what_went(ppacer_cli: Cli, sqlite_dbs) -> None:
    result = ppacer_cli("prune", "--older-than", "7d", "--batch", "1", "--json")

    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["runs"], out["attempts"], out["logLines"], out["batches"]) == (3, 6, 18, 3)
    assert out["dryRun"] is False
    assert [Path(s["database"]).name for s in out["space"]] == ["scheduler.db", "logs.db"]


def test_dry_run_deletes_nothing(ppacer_cli: Cli, sqlite_dbs) -> None:
    engine, logs_engine = sqlite_dbs

    result = ppacer_cli("prune", "--older-than", "1h", "--dry-run", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["runs"] == 4
    assert count(engine, dagruns) == 5 and count(logs_engine, tasklogs) == 30


@pytest.mark.parametrize("age", ["30", "30d", "720h", "43200m", "2592000s", " 30 d "])
def test_ages_in_days_hours_minutes_seconds(ppacer_cli: Cli, sqlite_dbs, age: str) -> None:
    result = ppacer_cli("prune", "--older-than", age, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["runs"] == 2


@pytest.mark.parametrize("age", ["0", "-3d", "30y", "soon", ""])
def test_a_bad_age_is_a_usage_error(ppacer_cli: Cli, sqlite_dbs, age: str) -> None:
    engine, _ = sqlite_dbs
    result = ppacer_cli("prune", "--older-than", age)
    assert result.exit_code == 2
    assert "is not an age" in result.output
    assert count(engine, dagruns) == 5


def test_without_an_age_nor_a_setting_nothing_is_deleted(ppacer_cli: Cli, sqlite_dbs) -> None:
    engine, _ = sqlite_dbs
    result = ppacer_cli("prune")
    assert result.exit_code == 2
    assert "--older-than" in result.output and "scheduler.retention_days" in result.output
    assert count(engine, dagruns) == 5


def test_the_age_comes_from_the_retention_days_setting(
    ppacer_cli: Cli, sqlite_dbs, tmp_path: Path
) -> None:
    engine, _ = sqlite_dbs
    (tmp_path / "ppacer.toml").write_text("[scheduler]\nretention_days = 60\n")
    result = ppacer_cli("prune", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["runs"] == 1  # 100 days old; 50 is within 60

    result = ppacer_cli("prune", "--json", env={"PPACER_SCHEDULER_RETENTION_DAYS": "5"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["runs"] == 2
    assert count(engine, dagruns) == 2


def test_a_missing_database_is_an_error(ppacer_cli: Cli, tmp_path: Path) -> None:
    result = ppacer_cli("prune", "--older-than", "1d", "--db", str(tmp_path / "nope.db"))
    assert result.exit_code == 1
    assert "nope.db does not exist" in result.output
    assert not (tmp_path / "nope.db").exists()


def file_bytes(path: Path) -> int:
    return sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if p.exists())


def test_vacuum_gives_a_default_mode_file_back_and_switches_it(
    ppacer_cli: Cli, tmp_path: Path
) -> None:
    """A file made in auto_vacuum NONE mode keeps its free pages; ``--vacuum`` rewrites
    it once in INCREMENTAL mode, after which plain prunes give space back."""
    engine = open_scheduler_db(str(tmp_path / "scheduler.db"))
    logs_engine = open_logs_db(str(tmp_path / "logs.db"))
    try:
        make_mode_none(engine, logs_engine)
        big = [ago(40 + i / 10, lines=20, message_size=400) for i in range(200)]
        seed_runs(engine, logs_engine, big)
        result = ppacer_cli("prune", "--older-than", "30d", "--json")
        assert result.exit_code == 0, result.output
        for space in json.loads(result.output)["space"]:  # the free pages stayed
            assert space["freedBytes"] == 0 and "ppacer prune --vacuum" in space["note"]
        checkpoint(logs_engine)
        full = file_bytes(tmp_path / "logs.db")

        result = ppacer_cli("prune", "--older-than", "30d", "--vacuum", "--json")

        assert result.exit_code == 0, result.output
        space = {Path(s["database"]).name: s for s in json.loads(result.output)["space"]}
        assert space["logs.db"]["freedBytes"] > full / 2
        assert file_bytes(tmp_path / "logs.db") < full / 4
        assert auto_vacuum(logs_engine) == 2 and auto_vacuum(engine) == 2

        seed_runs(
            engine, logs_engine, [ago(40 + i / 10, lines=20, message_size=400) for i in range(200)]
        )
        result = ppacer_cli("prune", "--older-than", "30d", "--json")
        space = {Path(s["database"]).name: s for s in json.loads(result.output)["space"]}
        assert space["logs.db"]["freedBytes"] > 0 and space["logs.db"]["note"] == ""
    finally:
        engine.dispose()
        logs_engine.dispose()


def test_prune_on_postgres(ppacer_cli: Cli, pg_url: str) -> None:
    engine = open_scheduler_db(pg_url)
    logs_engine = open_logs_db(pg_url)
    try:
        seed_runs(engine, logs_engine, SEEDS)

        result = ppacer_cli("prune", "--older-than", "30d", "--db", pg_url, "--json")

        assert result.exit_code == 0, result.output
        out = json.loads(result.output)
        assert (out["runs"], out["logLines"]) == (2, 12)
        assert len(out["space"]) == 1  # one database holds the logs too
        assert count(engine, dagruns) == 3
        assert found_in_logs(logs_engine, "ancient") == 0
        assert found_in_logs(logs_engine, "keepme") == 18

        result = ppacer_cli("prune", "--older-than", "1d", "--db", pg_url, "--vacuum")
        assert result.exit_code == 0, result.output
        assert "VACUUM done" in result.output
    finally:
        engine.dispose()
        logs_engine.dispose()
