"""A scheduler serving its executors loads no validation library.

The executors' routes (register, heartbeat, poll, report, report-and-pop, logs),
``/state`` and ``/healthz`` read and write their JSON by hand
(:mod:`ppacer.api.checked`); the API's models (pydantic) load on the first call
that needs one, here the trigger. Run in a fresh interpreter, so the process's
modules are its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_SCRIPT = r"""
import http.client, json, sqlite3, sys, time
from datetime import UTC, datetime, timedelta
from ppacer.dag.dag import Dag, Node, Registry
from ppacer.dag.schedule import FixedSchedule
from ppacer.dag.task import task
from ppacer.local import LocalRunner

@task
def first(ctx):
    ctx.logger.info("first ran")
    return 1

@task
def second(ctx):
    ctx.logger.info("second ran")

root = Node(first)
root.next(Node(second))
start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
every_second = FixedSchedule(start, timedelta(seconds=1))
dags = Registry([Dag("lean", schedule=every_second, root=root).done()])
runner = LocalRunner(dags, db="scheduler.db", logs_db="logs.db", port=0).start()

def get(path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", runner.port, timeout=10)
    if body is None:
        conn.request("GET", path)
    else:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    answer = conn.getresponse()
    return answer.status, json.loads(answer.read() or b"null")

found = {}
try:
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline and done < 2:
        with sqlite3.connect("scheduler.db") as db:
            done = db.execute("SELECT COUNT(*) FROM dagruns WHERE Status = 'SUCCESS'").fetchone()[0]
        time.sleep(0.05)
    found["succeeded"] = done
    found["state"] = get("/state")
    found["health"] = get("/healthz")[0]
    found["after_runs"] = sorted(m for m in sys.modules if m.split(".")[0] == "pydantic")[:3]
    found["trigger"] = get("/dag/run/trigger", {"dagId": "lean"})[0]
    found["after_trigger"] = "pydantic" in sys.modules
finally:
    runner.stop()
with sqlite3.connect("logs.db") as db:
    found["log_lines"] = db.execute("SELECT COUNT(*) FROM tasklogs").fetchone()[0]
print(json.dumps(found))
"""


def test_runs_through_scheduler_and_executor_load_no_validation_library(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["succeeded"] >= 2, result.stderr[-3000:]
    assert found["state"] == [200, {"state": "RUNNING"}]
    assert found["health"] == 200
    assert found["log_lines"] >= 4  # both tasks' lines of two runs, shipped and stored
    assert found["after_runs"] == []
    # The models load when a call needs one, and then answer as before.
    assert found["trigger"] == 200
    assert found["after_trigger"] is True


def test_an_idle_server_wakes_once_a_second_and_stops_when_asked() -> None:
    import socket
    import threading
    import time

    import uvicorn

    from ppacer.local import QuietServer

    async def app(scope: dict, receive: object, send: object) -> None:  # lifespan only
        if scope["type"] == "lifespan":
            while True:
                message = await receive()  # type: ignore[operator]
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})  # type: ignore[operator]
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})  # type: ignore[operator]
                    return

    class Counting(QuietServer):
        ticks = 0

        async def on_tick(self, counter: int) -> bool:
            Counting.ticks += 1
            return await super().on_tick(counter)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = Counting(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.005)
    assert server.started
    idle_from = time.monotonic()
    while time.monotonic() < idle_from + 2.5:  # idle for 2.5 s: uvicorn's own ticks 25 times
        time.sleep(0.05)
    server.request_exit()
    thread.join(10)
    sock.close()
    assert not thread.is_alive()
    assert Counting.ticks <= 5
