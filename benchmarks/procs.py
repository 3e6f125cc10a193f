"""The processes a benchmark starts, deployed as a user would deploy them.

    python benchmarks/procs.py local     --spec JSON --db DB --logs-db DB [--concurrency 8]
    python benchmarks/procs.py scheduler --spec JSON --db DB --logs-db DB
    python benchmarks/procs.py executor  --spec JSON --url URL --logs-db DB [--concurrency 8]
    python benchmarks/procs.py startup   --spec JSON --db DB --logs-db DB

``local`` is the one-process start (``ppacer.LocalRunner``, what ``ppacer.run``
uses); ``scheduler`` serves ``Scheduler.start(...)`` with uvicorn in the main
thread and ``executor`` runs ``ppacer.Executor`` (the README's two-process
deployment). Each prints one JSON line when it serves (``{"pid", "url"}``) and
stops cleanly on SIGTERM. ``startup`` times building the registry and
``Scheduler(...).start(registry)`` (sync, recovery, watcher preparation) and
prints the timings as one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

import sampler
import uvicorn
from workloads import build_registry

import ppacer
from ppacer.local import LocalRunner, QuietServer

try:
    from ppacer.scheduler.frozen_heap import frozen_heap
except ImportError:  # an older tree: it had none
    frozen_heap = contextlib.nullcontext  # type: ignore[assignment]
try:
    from ppacer.logconfig import configure_logging
except ImportError:  # an older tree (profile_hop.py --src): it was in ppacer.local
    from ppacer.local import configure_logging  # type: ignore[attr-defined,no-redef]


def _ready(**fields: Any) -> None:
    print(json.dumps({"pid": os.getpid(), **fields}), flush=True)


def run_local(args: argparse.Namespace) -> None:
    registry = build_registry(json.loads(args.spec))
    runner = LocalRunner(
        registry, args.db, args.logs_db, port=0, concurrency=args.concurrency, stop_timeout_s=10
    )
    _ready(url=runner.url)
    runner.serve_forever()


def run_scheduler(args: argparse.Namespace) -> None:
    registry = build_registry(json.loads(args.spec))
    app = ppacer.Scheduler(args.db, logs_db=args.logs_db).start(registry)
    sock = socket.socket(socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, 0))
    # Clients in this namespace reach it on the loopback address whatever it binds.
    _ready(url=f"http://127.0.0.1:{sock.getsockname()[1]}")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    with frozen_heap():  # as `ppacer scheduler` does (LocalRunner.serve_forever)
        QuietServer(config).run(sockets=[sock])


def run_executor(args: argparse.Namespace) -> None:
    registry = build_registry(json.loads(args.spec))
    executor = ppacer.Executor(
        args.url, registry, logs_db=args.logs_db, concurrency=args.concurrency
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    executor.start()
    _ready(url=args.url)
    while not stop.wait(0.5):
        pass
    executor.stop(10.0)


def run_startup(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    registry = build_registry(json.loads(args.spec))
    built = time.perf_counter()
    scheduler = ppacer.Scheduler(args.db, logs_db=args.logs_db)
    scheduler.start(registry)
    done = time.perf_counter()
    scheduler.close()
    tasks = sum(len(dag.tasks) for dag in registry.values())
    _ready(build_s=built - started, start_s=done - built, dags=len(registry), tasks=tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("role", choices=["local", "scheduler", "executor", "startup"])
    parser.add_argument("--spec", required=True, help="workload spec (JSON, see workloads.py)")
    parser.add_argument("--db", help="scheduler DB path or URL")
    parser.add_argument("--logs-db", help="logs DB path or URL")
    parser.add_argument("--url", help="the scheduler's URL (executor)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--host", default="127.0.0.1", help="the scheduler's address to bind")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    configure_logging(args.log_level)
    sampler.start_from_env(args.role)
    sampler.profile_from_env(args.role)
    logging.getLogger("uvicorn.error").setLevel(max(logging.WARNING, logging.getLogger().level))
    {
        "local": run_local,
        "scheduler": run_scheduler,
        "executor": run_executor,
        "startup": run_startup,
    }[args.role](args)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
