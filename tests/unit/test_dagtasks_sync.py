"""Task source capture and versioning in ``dags``/``dagtasks``, on a real SQLite file."""

from __future__ import annotations

import hashlib
import inspect
import json
import sqlite3
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

import ppacer
from ppacer.db.dags import SyncResult, read_current_tasks, read_task_source, sync_dags
from ppacer.db.engine import open_scheduler_db
from ppacer.timeutils import format_ts

VERSION = "0.1.0"
START = datetime(2024, 3, 11, 22, 50, 20, tzinfo=UTC)
T1 = "2024-03-12T00:00:00.000000UTC+00:00"
T2 = "2024-03-12T01:00:00.000000UTC+00:00"
T3 = "2024-03-12T02:00:00.000000UTC+00:00"
T4 = "2024-03-12T03:00:00.000000UTC+00:00"


class Extract(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> str:
        return "extracted"


class LoadV1(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> str:
        return "loaded by v1"


class LoadV2(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> str:
        rows = ["loaded", "by", "v2"]
        return " ".join(rows)


class LoadV3(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> str:
        ctx.logger.info("v3 loads quietly")
        return "loaded by v3"


class Report(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> None:
        return None


def etl_dag(load_cls: type[ppacer.BaseTask], *, with_report: bool = True) -> ppacer.Dag:
    root = ppacer.Node(Extract("extract"))
    load = root.next(load_cls("load"))
    if with_report:
        load.next(Report("report"))
    return ppacer.Dag(
        "etl",
        schedule=ppacer.FixedSchedule(START, 10),
        root=root,
        catch_up=True,
        tags=("nightly",),
    ).done()


def source_of(cls: type) -> str:
    return textwrap.dedent(inspect.getsource(cls.execute))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "scheduler.db"


@pytest.fixture
def engine(db_path: Path) -> Iterator[Engine]:
    eng = open_scheduler_db(str(db_path))
    try:
        yield eng
    finally:
        eng.dispose()


def sync(engine: Engine, dags: list[ppacer.Dag], now: str) -> SyncResult:
    with engine.begin() as conn:
        return sync_dags(conn, dags, now, VERSION)


def rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def task_versions(db: Path, task_id: str, dag_id: str = "etl") -> list[dict[str, Any]]:
    return rows(
        db,
        "SELECT * FROM dagtasks WHERE DagId=? AND TaskId=? ORDER BY InsertTs, rowid",
        (dag_id, task_id),
    )


def current_task_ids(db: Path, dag_id: str = "etl") -> list[str]:
    return [
        r["TaskId"]
        for r in rows(
            db,
            "SELECT TaskId FROM dagtasks WHERE DagId=? AND IsCurrent=1 ORDER BY PosDepth, PosWidth",
            (dag_id,),
        )
    ]


def test_first_sync_stores_one_current_row_per_task_with_type_source_and_hash(engine, db_path):
    result = sync(engine, [etl_dag(LoadV1)], T1)
    assert result == SyncResult(dags_inserted=1, tasks_inserted=3)
    stored = rows(db_path, "SELECT * FROM dagtasks ORDER BY PosDepth, PosWidth")
    assert [r["TaskId"] for r in stored] == ["extract", "load", "report"]
    expected_types = {"extract": Extract, "load": LoadV1, "report": Report}
    for row in stored:
        cls = expected_types[row["TaskId"]]
        assert row["DagId"] == "etl"
        assert row["IsCurrent"] == 1
        assert row["InsertTs"] == T1
        assert row["Version"] == VERSION
        assert row["TaskTypeName"] == cls.__name__
        assert source_of(cls) in row["TaskBodySource"]
        assert row["TaskBodyHash"] == sha256(row["TaskBodySource"])
        assert json.loads(row["TaskConfig"])["timeoutSeconds"] == 600.0
    assert [(r["PosDepth"], r["PosWidth"]) for r in stored] == [(1, 1), (2, 1), (3, 1)]


def test_stored_source_is_the_execute_method_dedented(engine, db_path):
    sync(engine, [etl_dag(LoadV2)], T1)
    (row,) = task_versions(db_path, "load")
    source = row["TaskBodySource"]
    assert source.startswith("def execute(self, ctx: ppacer.TaskContext) -> str:")
    assert 'rows = ["loaded", "by", "v2"]' in source
    assert "class LoadV2" not in source


def test_dags_row_has_schedule_start_in_stored_form_and_attributes(engine, db_path):
    sync(engine, [etl_dag(LoadV1)], T1)
    (row,) = rows(db_path, "SELECT * FROM dags")
    assert row["DagId"] == "etl"
    assert row["Schedule"] == "FixedSchedule: 10s"
    assert row["StartTs"] == "2024-03-11T22:50:20.000000UTC+00:00"
    assert row["StartTs"] == format_ts(START)
    attributes = {"catchUp": True, "tags": ["nightly"], "maxActiveRuns": 16}
    assert json.loads(row["Attributes"]) == attributes
    assert row["CreateTs"] == T1
    assert row["LatestUpdateTs"] == T1
    assert row["CreateVersion"] == VERSION
    assert row["LatestUpdateVersion"] == VERSION


def test_dags_row_start_is_stored_in_utc_when_given_in_another_zone(engine, db_path):
    cet_start = datetime(2024, 3, 11, 23, 50, 20, tzinfo=timezone(timedelta(hours=1)))
    dag = ppacer.Dag(
        "zoned", schedule=ppacer.FixedSchedule(cet_start, timedelta(minutes=90))
    ).add_root(Extract("extract"))
    sync(engine, [dag], T1)
    (row,) = rows(db_path, "SELECT * FROM dags")
    assert row["StartTs"] == "2024-03-11T22:50:20.000000UTC+00:00"
    assert row["Schedule"] == "FixedSchedule: 1h30m0s"
    assert json.loads(row["Attributes"]) == {"catchUp": False, "tags": [], "maxActiveRuns": 16}


def test_dag_without_schedule_has_null_start_and_schedule(engine, db_path):
    sync(engine, [ppacer.Dag("manual").add_root(Extract("extract"))], T1)
    (row,) = rows(db_path, "SELECT StartTs, Schedule FROM dags")
    assert row == {"StartTs": None, "Schedule": None}


def test_syncing_the_same_dag_twice_changes_nothing(engine, db_path):
    sync(engine, [etl_dag(LoadV1)], T1)
    dags_before = rows(db_path, "SELECT * FROM dags")
    tasks_before = rows(db_path, "SELECT rowid, * FROM dagtasks ORDER BY rowid")
    assert sync(engine, [etl_dag(LoadV1)], T2) == SyncResult()
    assert rows(db_path, "SELECT * FROM dags") == dags_before
    assert rows(db_path, "SELECT rowid, * FROM dagtasks ORDER BY rowid") == tasks_before


def test_syncing_the_same_dag_object_twice_changes_nothing(engine, db_path):
    dag = etl_dag(LoadV1)
    sync(engine, [dag], T1)
    tasks_before = rows(db_path, "SELECT rowid, * FROM dagtasks ORDER BY rowid")
    assert sync(engine, [dag], T2) == SyncResult()
    assert rows(db_path, "SELECT rowid, * FROM dagtasks ORDER BY rowid") == tasks_before


def test_changed_task_class_retires_the_old_row_and_inserts_a_current_one(engine, db_path):
    sync(engine, [etl_dag(LoadV1)], T1)
    result = sync(engine, [etl_dag(LoadV2)], T2)
    assert result == SyncResult(dags_updated=1, tasks_inserted=1, tasks_retired=1)
    old, new = task_versions(db_path, "load")
    assert (old["IsCurrent"], old["InsertTs"], old["TaskTypeName"]) == (0, T1, "LoadV1")
    assert (new["IsCurrent"], new["InsertTs"], new["TaskTypeName"]) == (1, T2, "LoadV2")
    assert source_of(LoadV1) in old["TaskBodySource"]
    assert source_of(LoadV2) in new["TaskBodySource"]
    assert old["TaskBodyHash"] != new["TaskBodyHash"]
    assert new["TaskBodyHash"] == sha256(new["TaskBodySource"])
    # Unchanged tasks keep their single row.
    assert len(task_versions(db_path, "extract")) == 1
    assert len(task_versions(db_path, "report")) == 1
    assert current_task_ids(db_path) == ["extract", "load", "report"]
    (dag_row,) = rows(db_path, "SELECT * FROM dags")
    assert (dag_row["CreateTs"], dag_row["LatestUpdateTs"]) == (T1, T2)


def test_many_versions_of_a_task_are_kept_with_only_the_latest_current(engine, db_path):
    sync(engine, [etl_dag(LoadV1)], T1)
    sync(engine, [etl_dag(LoadV2)], T2)
    sync(engine, [etl_dag(LoadV3)], T3)
    versions = task_versions(db_path, "load")
    assert [(r["TaskTypeName"], r["IsCurrent"], r["InsertTs"]) for r in versions] == [
        ("LoadV1", 0, T1),
        ("LoadV2", 0, T2),
        ("LoadV3", 1, T3),
    ]
    assert len({r["TaskBodyHash"] for r in versions}) == 3
    assert source_of(LoadV3) in versions[2]["TaskBodySource"]


def test_going_back_to_an_earlier_version_adds_another_current_row(engine, db_path):
    sync(engine, [etl_dag(LoadV1)], T1)
    sync(engine, [etl_dag(LoadV2)], T2)
    sync(engine, [etl_dag(LoadV1)], T3)
    versions = task_versions(db_path, "load")
    assert [(r["TaskTypeName"], r["IsCurrent"]) for r in versions] == [
        ("LoadV1", 0),
        ("LoadV2", 0),
        ("LoadV1", 1),
    ]
    assert versions[0]["TaskBodyHash"] == versions[2]["TaskBodyHash"]


def test_each_task_has_exactly_one_current_row_after_many_syncs(engine, db_path):
    for now, cls in zip((T1, T2, T3, T4), (LoadV1, LoadV2, LoadV3, LoadV2), strict=True):
        sync(engine, [etl_dag(cls)], now)
    counts = rows(
        db_path,
        "SELECT TaskId, SUM(IsCurrent) AS current, COUNT(*) AS total "
        "FROM dagtasks GROUP BY TaskId ORDER BY TaskId",
    )
    assert counts == [
        {"TaskId": "extract", "current": 1, "total": 1},
        {"TaskId": "load", "current": 1, "total": 4},
        {"TaskId": "report", "current": 1, "total": 1},
    ]


def test_task_removed_from_the_dag_is_no_longer_current(engine, db_path):
    sync(engine, [etl_dag(LoadV1)], T1)
    result = sync(engine, [etl_dag(LoadV1, with_report=False)], T2)
    assert result.tasks_retired == 1
    assert result.tasks_inserted == 0
    (report,) = task_versions(db_path, "report")
    assert report["IsCurrent"] == 0
    assert current_task_ids(db_path) == ["extract", "load"]


def test_task_added_back_after_removal_gets_a_new_current_row(engine, db_path):
    sync(engine, [etl_dag(LoadV1)], T1)
    sync(engine, [etl_dag(LoadV1, with_report=False)], T2)
    sync(engine, [etl_dag(LoadV1)], T3)
    versions = task_versions(db_path, "report")
    assert [(r["IsCurrent"], r["InsertTs"]) for r in versions] == [(0, T1), (1, T3)]
    assert current_task_ids(db_path) == ["extract", "load", "report"]


def test_task_that_moves_in_the_graph_gets_a_new_version_with_its_new_position(engine, db_path):
    sync(engine, [etl_dag(LoadV1)], T1)
    root = ppacer.Node(Extract("extract"))
    root.next(LoadV1("load"))
    root.next(Report("report"))
    moved = ppacer.Dag(
        "etl", schedule=ppacer.FixedSchedule(START, 10), root=root, catch_up=True, tags=("nightly",)
    )
    sync(engine, [moved], T2)
    old, new = task_versions(db_path, "report")
    assert (old["IsCurrent"], old["PosDepth"], old["PosWidth"]) == (0, 3, 1)
    assert (new["IsCurrent"], new["PosDepth"], new["PosWidth"]) == (1, 2, 2)
    assert len(task_versions(db_path, "load")) == 1


def test_task_whose_source_is_unavailable_gets_a_placeholder(engine, db_path):
    dyn_cls = type("Dyn", (ppacer.BaseTask,), {"execute": eval("lambda self, ctx: None")})
    root = ppacer.Node(Extract("extract"))
    root.next(dyn_cls("dynamic"))
    sync(engine, [ppacer.Dag("dyn").add_root(root)], T1)
    (row,) = task_versions(db_path, "dynamic", dag_id="dyn")
    assert row["TaskTypeName"] == "Dyn"
    assert "not available" in row["TaskBodySource"]
    assert "Dyn" in row["TaskBodySource"]
    assert row["TaskBodyHash"] == sha256(row["TaskBodySource"])
    assert row["IsCurrent"] == 1


def test_task_class_defined_by_exec_gets_a_placeholder(engine, db_path):
    namespace: dict[str, Any] = {"ppacer": ppacer}
    exec(
        "class Execd(ppacer.BaseTask):\n    def execute(self, ctx):\n        return 1\n",
        namespace,
    )
    dag = ppacer.Dag("execd").add_root(namespace["Execd"]("execd_task"))
    sync(engine, [dag], T1)
    (row,) = task_versions(db_path, "execd_task", dag_id="execd")
    assert row["TaskTypeName"] == "Execd"
    assert "not available" in row["TaskBodySource"]
    assert row["TaskBodyHash"] == sha256(row["TaskBodySource"])


def test_dag_with_unavailable_source_syncs_twice_without_changes(engine, db_path):
    dyn_cls = type("Dyn", (ppacer.BaseTask,), {"execute": eval("lambda self, ctx: None")})
    dag = ppacer.Dag("dyn").add_root(dyn_cls("dynamic"))
    sync(engine, [dag], T1)
    before = rows(db_path, "SELECT rowid, * FROM dagtasks ORDER BY rowid")
    assert sync(engine, [dag], T2) == SyncResult()
    assert rows(db_path, "SELECT rowid, * FROM dagtasks ORDER BY rowid") == before


def test_decorated_function_task_stores_the_function_source(engine, db_path):
    @ppacer.task(id="greet")
    def say_hello(ctx: ppacer.TaskContext) -> str:
        return "hello from a function task"

    sync(engine, [ppacer.Dag("fn").add_root(say_hello)], T1)
    (row,) = task_versions(db_path, "greet", dag_id="fn")
    assert row["TaskTypeName"].endswith("say_hello")
    assert 'return "hello from a function task"' in row["TaskBodySource"]
    assert row["TaskBodyHash"] == sha256(row["TaskBodySource"])


def test_several_dags_sync_independently(engine, db_path):
    other = ppacer.Dag("other").add_root(LoadV1("load"))
    sync(engine, [etl_dag(LoadV1), other], T1)
    sync(engine, [etl_dag(LoadV2), other], T2)
    assert [r["IsCurrent"] for r in task_versions(db_path, "load")] == [0, 1]
    assert [r["IsCurrent"] for r in task_versions(db_path, "load", dag_id="other")] == [1]
    assert {r["DagId"] for r in rows(db_path, "SELECT DagId FROM dags")} == {"etl", "other"}


def test_read_helpers_return_the_current_and_the_historical_version(engine):
    sync(engine, [etl_dag(LoadV1)], T1)
    sync(engine, [etl_dag(LoadV2)], T3)
    with engine.connect() as conn:
        current = read_current_tasks(conn, "etl")
        at_t2 = read_task_source(conn, "etl", "load", T2)
        at_t4 = read_task_source(conn, "etl", "load", T4)
        missing = read_task_source(conn, "etl", "nope", T4)
    assert [t.task_id for t in current] == ["extract", "load", "report"]
    assert all(t.is_current for t in current)
    assert at_t2 is not None
    assert at_t4 is not None
    assert (at_t2.type_name, at_t2.is_current) == ("LoadV1", False)
    assert (at_t4.type_name, at_t4.is_current) == ("LoadV2", True)
    assert missing is None
