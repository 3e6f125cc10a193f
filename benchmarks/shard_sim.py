"""Past one leader: DAGs sharded across leaders on one PostgreSQL, a simple model.

    python benchmarks/shard_sim.py                       # the table in docs/scaling.md
    python benchmarks/shard_sim.py --leaders 1,2,4,8,16 --dags 10000 --zipf 1.1
    python benchmarks/shard_sim.py measure --db postgresql+psycopg://postgres@127.0.0.1:5432/test

What cannot run on this machine (several leader hosts, a database host of its own)
is modelled from what was measured on one: per task, the leader's CPU
(``--leader-ms``, the scheduler's CPU per task; its event loop is one core) and
the database server's CPU (``--db-ms``, PostgreSQL's backends per task), both from
``measure`` (a ``wide1000`` run on a fresh database, CPU from ``/proc``).

The model: ``--dags`` DAGs whose load (tasks per second) follows a Zipf law of
exponent ``--zipf`` (a few DAGs carry most of the work); each DAG belongs to one
leader by rendezvous hashing of its id over the leaders' ids (a leader that goes
away hands only its own DAGs on, spread over the others). A leader serves its DAGs
as today's single scheduler does (runs, ready queues, leases, the executors of its
DAGs' queues); all share one PostgreSQL, each with its own fencing epoch per shard.
The cluster's throughput ``T`` (tasks/s) is bound by the busiest leader,
``T * max_share * leader_ms <= 1000 * --leader-util`` and by the database,
``T * db_ms <= 1000 * --db-cores * --db-util``. With ``--ui-read-share`` of the
database's CPU taken by UI and API reads, read replicas take that share off the
primary. Per leader count: the busiest leader's share, both bounds, which binds,
and after one leader fails, the share of DAGs that move and the new bound.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path


def weight(dag: str, leader: str) -> int:
    """Rendezvous (highest random weight) hashing: the leader with the highest weight owns."""
    return int.from_bytes(hashlib.blake2b(f"{dag}/{leader}".encode(), digest_size=8).digest())


def owners(dags: list[str], leaders: list[str]) -> dict[str, str]:
    return {d: max(leaders, key=lambda leader: weight(d, leader)) for d in dags}


def zipf_loads(n: int, s: float) -> list[float]:
    raw = [1.0 / (k**s) for k in range(1, n + 1)]
    total = sum(raw)
    return [r / total for r in raw]


def simulate(args: argparse.Namespace) -> list[dict[str, float]]:
    dags = [f"dag{i:05d}" for i in range(args.dags)]
    share = dict(zip(dags, zipf_loads(args.dags, args.zipf), strict=True))
    db_budget_ms = 1000.0 * args.db_cores * args.db_util * (1.0 - args.ui_read_share)
    db_replica_budget_ms = 1000.0 * args.db_cores * args.db_util
    rows = []
    for n in args.leaders:
        leaders = [f"leader{i}" for i in range(n)]
        own = owners(dags, leaders)
        load = {leader: 0.0 for leader in leaders}
        for d, leader in own.items():
            load[leader] += share[d]
        max_share = max(load.values())
        by_leaders = 1000.0 * args.leader_util / (args.leader_ms * max_share)
        by_db = db_budget_ms / args.db_ms
        row = {
            "leaders": n,
            "max_share": max_share,
            "balance": max_share * n,
            "tasks_per_s_leaders": by_leaders,
            "tasks_per_s_db": by_db,
            "tasks_per_s_db_with_replicas": db_replica_budget_ms / args.db_ms,
            "tasks_per_s": min(by_leaders, by_db),
        }
        if n > 1:
            survivors = leaders[1:]
            after = owners(dags, survivors)
            moved = sum(1 for d in dags if after[d] != own[d]) / len(dags)
            load2 = {leader: 0.0 for leader in survivors}
            for d, leader in after.items():
                load2[leader] += share[d]
            row["moved_on_failure"] = moved
            row["tasks_per_s_after_failure"] = min(
                1000.0 * args.leader_util / (args.leader_ms * max(load2.values())), by_db
            )
        rows.append(row)
    return rows


def table(rows: list[dict[str, float]]) -> str:
    head = (
        "| leaders | busiest leader's share | tasks/s bound by leaders | by the database "
        "(primary; with read replicas) | cluster tasks/s | binds | DAGs moved when one fails "
        "| tasks/s after |"
    )
    out = [head, "|" + "---|" * 8]
    for r in rows:
        binds = "leaders" if r["tasks_per_s_leaders"] < r["tasks_per_s_db"] else "database"
        out.append(
            f"| {r['leaders']:.0f} | {r['max_share']:.1%} | {r['tasks_per_s_leaders']:,.0f} | "
            f"{r['tasks_per_s_db']:,.0f}; {r['tasks_per_s_db_with_replicas']:,.0f} | "
            f"{r['tasks_per_s']:,.0f} | {binds} | "
            + (
                f"{r['moved_on_failure']:.0%} | {r['tasks_per_s_after_failure']:,.0f} |"
                if "moved_on_failure" in r
                else "- | - |"
            )
        )
    return "\n".join(out)


# ---------------------------------------------------------------------- measure


def _postgres_cpu_s() -> float:
    """CPU seconds of every ``postgres`` process now (utime + stime, /proc)."""
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            if comm != "postgres":
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / tick


def measure(args: argparse.Namespace) -> None:
    """The scheduler's and PostgreSQL's CPU per task on ``wide1000`` (separate processes)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from harness import Database, Deployment, temp_root, trigger_and_wait

    spec = {"kind": "latency", "names": ["wide1000"]}
    tasks = 1002
    with temp_root() as tmp:
        logs = tmp / "logs"
        logs.mkdir()
        with (
            Database(args.db, tmp) as db,
            Deployment(
                "separate", spec, db, logs, label="measure", concurrency=8, log_level="WARNING"
            ) as dep,
        ):
            trigger_and_wait(dep, db, "wide1000")
            leader, database, latency = [], [], []
            for _ in range(args.runs):
                c0, p0 = dep.cpu_s(), _postgres_cpu_s()
                latency.append(trigger_and_wait(dep, db, "wide1000")["latency_s"])
                c1, p1 = dep.cpu_s(), _postgres_cpu_s()
                leader.append((c1["scheduler"] - c0["scheduler"]) / tasks * 1000)
                database.append((p1 - p0) / tasks * 1000)
                time.sleep(0.5)
    print(
        json.dumps(
            {
                "db": db.kind,
                "leader_ms_per_task": statistics.median(leader),
                "db_ms_per_task": statistics.median(database),
                "wide1000_latency_s": statistics.median(latency),
                "runs": args.runs,
                "note": "db CPU counts every postgres process on the machine",
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", nargs="?", default="simulate", choices=["simulate", "measure"])
    parser.add_argument("--db", default=None, help="measure: PostgreSQL URL")
    parser.add_argument("--runs", type=int, default=5, help="measure: wide1000 runs")
    parser.add_argument("--leaders", default="1,2,4,8,16")
    parser.add_argument("--dags", type=int, default=10_000)
    parser.add_argument("--zipf", type=float, default=1.0)
    parser.add_argument("--leader-ms", type=float, default=0.55, help="leader CPU ms per task")
    parser.add_argument("--leader-util", type=float, default=0.7, help="usable share of a core")
    parser.add_argument("--db-ms", type=float, default=0.35, help="database CPU ms per task")
    parser.add_argument("--db-cores", type=float, default=8.0)
    parser.add_argument("--db-util", type=float, default=0.7)
    parser.add_argument("--ui-read-share", type=float, default=0.2)
    args = parser.parse_args()
    if args.command == "measure":
        measure(args)
        return
    args.leaders = [int(x) for x in args.leaders.split(",")]
    print(table(simulate(args)))


if __name__ == "__main__":
    main()
