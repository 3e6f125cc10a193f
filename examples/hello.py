"""ppacer hello world: a DAG `example` of two tasks, start -> finish, every 10 seconds.

Run it with `python examples/hello.py`; stop it with Ctrl-C, then explore
scheduler.db and logs.db with sqlite3 (see the README).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import ppacer


class PrintTask(ppacer.BaseTask):
    """Prints its id and logs a line to the task logs."""

    def execute(self, ctx: ppacer.TaskContext) -> None:
        print(f" >>> PrintTask <<<: {self.task_id}", flush=True)
        ctx.logger.info("PrintTask finished!", extra={"ts": datetime.now(UTC).isoformat()})


def print_dag(dag_id: str, interval: timedelta = timedelta(seconds=10)) -> ppacer.Dag:
    """[start] --> [finish], on a fixed schedule."""
    start = ppacer.Node(PrintTask("start"))
    start.next(PrintTask("finish"))
    schedule = ppacer.FixedSchedule(datetime(2024, 3, 11, 12, 0, tzinfo=UTC), interval)
    return ppacer.Dag(dag_id).add_schedule(schedule).add_root(start).done()


def main() -> None:
    interval_s = float(os.environ.get("PPACER_HELLO_INTERVAL_S", "10"))
    dags = ppacer.Registry()
    dags.add(print_dag("example", timedelta(seconds=interval_s)))
    ppacer.run(
        dags,
        db=os.environ.get("PPACER_DB", "scheduler.db"),
        logs_db=os.environ.get("PPACER_LOGS_DB", "logs.db"),
        port=int(os.environ.get("PPACER_PORT", "9321")),
    )


if __name__ == "__main__":
    main()
