"""What each step of a task hop costs on this machine, measured alone.

    python benchmarks/micro.py               # SQLite
    python benchmarks/micro.py --db postgresql+psycopg://postgres@127.0.0.1:5432/test

A hop (a task finishes, its child starts) is: the executor's SUCCESS report
(HTTP POST: JSON, pydantic), the scheduler's transaction (UPDATE the attempt,
INSERT the child, COMMIT), the answer to the executor's pending long poll
(JSON), the executor handing the task to a worker thread, plus log records.
Each of those is timed here in isolation (median of many repetitions, in
microseconds), so the figures of ``run.py`` can be read as a sum. The HTTP
server runs in a child process, as the scheduler does.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
from sqlalchemy import insert

from ppacer.api.models import TaskStatusUpdate, TaskToExec
from ppacer.db.dagruntasks import update_dag_run_task_status
from ppacer.db.engine import open_scheduler_db
from ppacer.db.schema import dagruntasks
from ppacer.timeutils import format_ts, parse_ts, utc_now

TASK = TaskToExec(
    "chain50", "2026-11-23T02:33:47.123456UTC+00:00", "t7", 0, 12, {}, {"t6": None}, "a" * 32, 30.0
)
UPDATE = {
    "dagId": "chain50",
    "execTs": "2026-11-23T02:33:47.123456UTC+00:00",
    "taskId": "t7",
    "retry": 0,
    "status": "SUCCESS",
    "taskError": None,
    "leaseToken": "a" * 32,
}


def timed(fn: Callable[[], object], n: int) -> float:
    """Median microseconds of ``fn()`` over ``n`` calls (after a few warm-up calls)."""
    for _ in range(min(50, n)):
        fn()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


# ---------------------------------------------------------------------- HTTP server


def serve(kind: str) -> None:
    """The child process: a Starlette app (or a bare ASGI app) on uvicorn, as ppacer serves."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    body = json.dumps(TASK.to_json()).encode()

    async def pop(_request: Request) -> Response:
        return JSONResponse(TASK.to_json())

    async def update(request: Request) -> Response:
        TaskStatusUpdate.model_validate(json.loads(await request.body()))
        return Response(status_code=200)

    async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "POST":
            while (await receive()).get("more_body"):
                pass
            out, ctype = b"", b"text/plain"
        else:
            out, ctype = body, b"application/json"
        headers = [(b"content-type", ctype), (b"content-length", str(len(out)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": out})

    app: Any = bare
    if kind == "starlette":
        app = Starlette(
            routes=[Route("/pop", pop, methods=["GET"]), Route("/update", update, methods=["POST"])]
        )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


def http_costs(n: int) -> dict[str, float]:
    """Round trips from an httpx2 client (ppacer's) and from http.client, to Starlette
    and to a bare ASGI app, both on uvicorn in a child process."""
    out: dict[str, float] = {}
    for kind in ("starlette", "bare-asgi"):
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind], stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout is not None
            port = int(child.stdout.readline())
            time.sleep(0.3)
            out.update(_round_trips(kind, port, n))
        finally:
            child.terminate()
            child.wait(10)
    return out


def _round_trips(kind: str, port: int, n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    client = httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=15.0)
    out[f"http GET pop, httpx2 -> {kind}"] = timed(lambda: client.get("/pop").json(), n)
    out[f"http POST update, httpx2 -> {kind}"] = timed(
        lambda: client.post("/update", json=UPDATE), n
    )
    client.close()
    conn = http.client.HTTPConnection("127.0.0.1", port)
    payload = json.dumps(UPDATE).encode()
    headers = {"content-type": "application/json"}

    def get() -> None:
        conn.request("GET", "/pop")
        json.loads(conn.getresponse().read())

    def post() -> None:
        conn.request("POST", "/update", payload, headers)
        conn.getresponse().read()

    out[f"http GET pop, http.client -> {kind}"] = timed(get, n)
    out[f"http POST update, http.client -> {kind}"] = timed(post, n)
    conn.close()
    return out


# ---------------------------------------------------------------------- database


def db_costs(url: str | None, n: int) -> dict[str, float]:
    """A hop's transaction: UPDATE the finished attempt, INSERT the child, COMMIT."""
    tmp = tempfile.mkdtemp(prefix="ppacer-micro-")
    target = url or str(Path(tmp) / "scheduler.db")
    engine = open_scheduler_db(target)
    now = format_ts(utc_now())
    exec_ts = format_ts(utc_now())
    counter = iter(range(10**9))

    def row(i: int, status: str) -> dict[str, Any]:
        return {
            "DagId": "micro",
            "ExecTs": exec_ts,
            "TaskId": f"t{i}",
            "Retry": 0,
            "InsertTs": now,
            "Status": status,
            "StatusUpdateTs": now,
            "Version": "0",
        }

    with engine.begin() as conn:
        conn.execute(insert(dagruntasks), [row(0, "SCHEDULED")])

    def hop() -> None:
        i = next(counter)
        with engine.begin() as conn:
            update_dag_run_task_status(conn, "micro", exec_ts, f"t{i}", 0, "SUCCESS", now)  # type: ignore[arg-type]
            conn.execute(insert(dagruntasks), [row(i + 1, "SCHEDULED")])

    def empty() -> None:
        with engine.begin():
            pass

    kind = "postgresql" if url else "sqlite"
    mark = "%s" if url else "?"
    q = '"' if url else ""
    update_sql = (
        f"UPDATE dagruntasks SET {q}Status{q} = {mark}, {q}StatusUpdateTs{q} = {mark} "
        f"WHERE {q}DagId{q} = {mark} AND {q}ExecTs{q} = {mark} AND {q}TaskId{q} = {mark} "
        f"AND {q}Retry{q} = {mark}"
    )
    cols = ", ".join(f"{q}{c}{q}" for c in row(0, ""))
    insert_sql = f"INSERT INTO dagruntasks ({cols}) VALUES ({', '.join([mark] * 8)})"

    def raw_hop() -> None:
        i = next(counter)
        with engine.begin() as conn:
            conn.exec_driver_sql(update_sql, ("SUCCESS", now, "micro", exec_ts, f"t{i}", 0))
            conn.exec_driver_sql(insert_sql, tuple(row(i + 1, "SCHEDULED").values()))

    out = {
        f"db {kind}: hop transaction (UPDATE + INSERT + COMMIT, SQLAlchemy Core)": timed(hop, n),
        f"db {kind}: hop transaction (same, exec_driver_sql)": timed(raw_hop, n),
        f"db {kind}: empty transaction (BEGIN + COMMIT)": timed(empty, n),
    }
    if url:
        with engine.begin() as conn:
            conn.execute(dagruntasks.delete().where(dagruntasks.c.DagId == "micro"))
    engine.dispose()
    return out


# ---------------------------------------------------------------------- in-process steps


def local_costs(n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    pool = ThreadPoolExecutor(8)
    out["thread pool hand-off (submit + result)"] = timed(lambda: pool.submit(int).result(), n)
    pool.shutdown()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    done = threading.Event()

    def to_loop() -> None:
        done.clear()
        loop.call_soon_threadsafe(done.set)
        done.wait()

    out["thread -> event loop -> thread (call_soon_threadsafe)"] = timed(to_loop, n)
    loop.call_soon_threadsafe(loop.stop)
    thread.join()

    raw = json.dumps(UPDATE).encode()
    out["json.loads + pydantic TaskStatusUpdate"] = timed(
        lambda: TaskStatusUpdate.model_validate(json.loads(raw)), n
    )
    out["json.dumps TaskToExec"] = timed(lambda: json.dumps(TASK.to_json()), n)
    out["format_ts(utc_now())"] = timed(lambda: format_ts(utc_now()), n)
    out["parse_ts"] = timed(lambda: parse_ts(TASK.exec_ts), n)

    log = logging.getLogger("ppacer.micro")
    log.propagate = False
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y/%m/%d %H:%M:%S")
    )
    log.addHandler(handler)

    def record() -> None:
        log.info("Updating dag run task status dagId=%s execTs=%s taskId=%s", "d", "e", "t")

    log.setLevel(logging.INFO)
    out["log.info at INFO (formatted, to a stream)"] = timed(record, n)
    log.setLevel(logging.WARNING)
    out["log.info at WARNING (filtered)"] = timed(record, n)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default=None, help="PostgreSQL URL (default: a SQLite file)")
    parser.add_argument("-n", type=int, default=2000, help="repetitions per figure")
    parser.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    results = {**http_costs(args.n), **db_costs(args.db, args.n), **local_costs(args.n * 5)}
    for name, us in results.items():
        print(json.dumps({"micro": name, "median_us": round(us, 1)}))
    print()
    width = max(map(len, results))
    for name, us in results.items():
        print(f"{name:<{width}}  {us:9.1f} us")


if __name__ == "__main__":
    main()
