"""Where a hop's time goes: ``chain50`` under the in-process stack sampler.

    python benchmarks/profile_hop.py [--runs 40] [--modes separate,one-process] [--db URL]
    python benchmarks/profile_hop.py --dag fanout200 --src /tmp/ca465ca/src   # another tree

Deploys as ``run.py`` does, with ``PPACER_BENCH_SAMPLE`` set (``sampler.py``:
every thread's stack at 1 kHz), runs ``chain50`` ``--runs`` times, and prints:

- the hop: the median ``chain50`` latency / 50, without and with the sampler
  running (its cost), and per hop the scheduler's requests by route with the
  time the server spent in them (``/metrics``: from the first byte read to the
  last one written, the event loop's share of a hop);
- per process, ``profile_summary.py``'s report of the busy stacks (threads
  waiting left out): the scheduler's event loop by layer, and the executor's
  worker thread (whose waits on the HTTP answer are the server's time plus the
  loopback).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import time
from pathlib import Path

import httpx2
from harness import Database, Deployment, temp_root, trigger_and_wait
from profile_summary import summarise
from workloads import latency_root

import ppacer

#: As run.py's defaults: concurrency 8, logging at WARNING.
OPTS = {"concurrency": 8, "log_level": "WARNING"}


def _count_tasks(name: str) -> int:
    return len(ppacer.Dag(name).add_root(latency_root(name)).done().tasks)


def route_times(url: str) -> dict[str, tuple[int, float]]:
    """(requests, seconds) by ``METHOD route`` from the scheduler's ``/metrics``."""
    text = httpx2.get(f"{url}/metrics", timeout=10).text
    out: dict[str, tuple[int, float]] = {}
    pattern = re.compile(r"^ppacer_http_request_duration_seconds_(count|sum)\{(.*)\} (\S+)$")
    for line in text.splitlines():
        m = pattern.match(line)
        if m is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        key = f"{labels['method']} {labels['route']}"
        n, s = out.get(key, (0, 0.0))
        if m.group(1) == "count":
            n += int(float(m.group(3)))
        else:
            s += float(m.group(3))
        out[key] = (n, s)
    return out


def chain_runs(dep: Deployment, db: Database, runs: int, dag: str = "chain50") -> list[float]:
    trigger_and_wait(dep, db, dag)
    return [trigger_and_wait(dep, db, dag)["latency_s"] for _ in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--modes", default="separate,one-process")
    parser.add_argument("--db", default=None, help="PostgreSQL URL (default: SQLite files)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--dag", default="chain50", help="the workload (a hop: its tasks)")
    parser.add_argument("--src", default=None, help="profile another tree's src/ (PYTHONPATH)")
    parser.add_argument("--out", default="/tmp/ppacer-profile", help="where the samples stay")
    args = parser.parse_args()
    spec = {"kind": "latency", "names": [args.dag]}
    src = Path(args.src).resolve() if args.src else None
    per_run = _count_tasks(args.dag)
    with temp_root() as tmp:
        logs = tmp / "logs"
        logs.mkdir()
        for mode in args.modes.split(","):
            with (
                Database(args.db, tmp) as db,
                Deployment(mode, spec, db, logs, label="plain", pythonpath=src, **OPTS) as d,
            ):
                plain = chain_runs(d, db, args.runs, args.dag)
            out = Path(args.out) / f"{args.dag}-{mode}-{'src' if src is None else src.parent.name}"
            shutil.rmtree(out, ignore_errors=True)
            os.environ["PPACER_BENCH_SAMPLE"] = str(out)
            try:
                with (
                    Database(args.db, tmp) as db,
                    Deployment(
                        mode, spec, db, logs, label="sampled", pythonpath=src, **OPTS
                    ) as dep,
                ):
                    before = route_times(dep.url)
                    sampled = chain_runs(dep, db, args.runs, args.dag)
                    after = route_times(dep.url)
                    for proc in dep.procs.values():
                        os.kill(proc.pid, signal.SIGUSR1)
                    time.sleep(1.0)
            finally:
                del os.environ["PPACER_BENCH_SAMPLE"]
            hops = (args.runs + 1) * per_run
            print(f"=== {mode}, {db.kind}: {args.dag}, {args.runs} runs (+1 warm-up), src {src}")
            print(
                f"per task: {statistics.median(plain) / per_run * 1000:.3f} ms "
                f"(sampled: {statistics.median(sampled) / per_run * 1000:.3f} ms)"
            )
            print("per task, requests served and the server's time in them:")
            for key in sorted(after):
                n0, s0 = before.get(key, (0, 0.0))
                n1, s1 = after[key]
                if n1 - n0 and "metrics" not in key:
                    print(
                        f"  {key:40s} {(n1 - n0) / hops:6.3f} requests "
                        f"{(s1 - s0) / hops * 1000:7.3f} ms"
                    )
            for path in sorted(Path(out).glob("*.txt")):
                role = path.name.split("-")[0]
                loop = "MainThread" if role == "scheduler" else "ppacer-scheduler"
                if role in ("scheduler", "local"):
                    print(f"-- {role}: the scheduler's event loop, busy stacks")
                    print(summarise(path, args.top, False, busy=True, thread=loop))
                if role in ("executor", "local"):
                    print(f"-- {role}: the executor's worker threads, every stack")
                    print(summarise(path, args.top, False, busy=False, thread="ppacer-task"))
                print()


if __name__ == "__main__":
    main()
