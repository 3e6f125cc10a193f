"""Hot reload, the scheduler's side: new task versions for new runs, old ones for runs under way.

A real scheduler on a loopback port; the test pops and reports over HTTP as an
executor does, so it sees the code version each attempt is handed with.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import ppacer
from ppacer.api.models import StatusReport
from ppacer.dag.status import TaskStatus
from tests.conftest import query, wait_for


class Say(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> None:
        ctx.logger.info("version one")


class SayAgain(ppacer.BaseTask):
    def execute(self, ctx: ppacer.TaskContext) -> None:
        ctx.logger.info("version two, with another body")


def _registry(second: type[ppacer.BaseTask], *extra: ppacer.Dag) -> ppacer.Registry:
    root = ppacer.Node(Say("first"))
    root.next(second("second"))
    return ppacer.Registry([ppacer.Dag("flow").add_root(root).done(), *extra])


def _pop_one(client: ppacer.Client) -> ppacer.TaskToExec:
    return wait_for(lambda: client.get_task(executor="tester"), 10, "an attempt to pop")


def _finish(client: ppacer.Client, item: ppacer.TaskToExec) -> None:
    client.report(StatusReport.for_task(item, TaskStatus.SUCCESS))


def test_runs_under_way_keep_their_version_and_new_runs_take_the_new_one(start_local, db_paths):
    db = db_paths[0]
    runner = start_local(_registry(Say), with_executor=False)
    client = runner.client
    first_run = client.trigger_dag_run("flow")
    item = _pop_one(client)
    assert (item.task_id, item.exec_ts) == ("first", first_run["execTs"])
    old_second = runner.scheduler.registry["flow"].tasks["second"].code_version

    hourly = ppacer.Dag(
        "hourly",
        schedule=ppacer.FixedSchedule(datetime(2024, 1, 1, tzinfo=UTC), timedelta(hours=1)),
        root=ppacer.Node(Say("only")),
    ).done()
    synced = runner.scheduler.reload_from_thread(_registry(SayAgain, hourly))
    assert synced is not None and synced.tasks_inserted >= 2  # flow/second anew, hourly/only
    new_second = runner.scheduler.registry["flow"].tasks["second"].code_version
    assert new_second != old_second

    # The run under way goes on with the version it started with.
    _finish(client, item)
    second = _pop_one(client)
    assert (second.task_id, second.exec_ts) == ("second", first_run["execTs"])
    assert second.code_version == old_second
    _finish(client, second)

    # A new run takes the new version.
    new_run = client.trigger_dag_run("flow")
    _finish(client, _pop_one(client))
    second = _pop_one(client)
    assert (second.exec_ts, second.code_version) == (new_run["execTs"], new_second)

    # The change is recorded in dagtasks, and the new DAG is scheduled.
    rows = query(
        db,
        "SELECT IsCurrent FROM dagtasks WHERE DagId = 'flow' AND TaskId = 'second' "
        "ORDER BY InsertTs",
    )
    assert [r["IsCurrent"] for r in rows] == [0, 1]
    assert runner.scheduler.next_run("hourly") is not None
    assert client.get_dag("hourly")["dagId"] == "hourly"
