"""Summarise py-spy profiles recorded by ``run.py --py-spy DIR`` (raw, collapsed stacks),
or ``sampler.py``'s (``profile_hop.py``; ``--busy`` leaves out waiting threads).

    python benchmarks/run.py --only chain50 --modes separate --runs 40 --py-spy /tmp/prof
    python benchmarks/profile_summary.py /tmp/prof/*.txt

For each file: samples per thread, CPU by layer (the innermost frame's package:
HTTP server, HTTP client, SQLAlchemy, the database driver, JSON, logging,
pydantic, ppacer itself, ...), and the functions with the most inclusive
samples. Stacks of imports and of the scheduler's start-up are left out
(``--keep-startup`` keeps them), so the figures are about steady work.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# (layer, pattern on the innermost frame "function (file:line)"): the first match names
# the layer. py-spy shows no C frames, so time in C (the database driver, a socket
# syscall) is counted on the Python frame that called it, as named here.
LAYERS: list[tuple[str, str]] = [
    ("db driver: commit", r"do_commit|do_rollback|Connection\.commit \(psycopg"),
    ("db driver: execute", r"do_execute|Cursor\.execute \(psycopg"),
    ("db driver: other", r"\(psycopg|\(sqlite3"),
    ("sqlalchemy", r"\(sqlalchemy/"),
    ("server socket write", r"RequestResponseCycle\.send \(|\(uvloop"),
    ("client socket read/write", r"SyncStream\.(read|write) \("),
    ("client pool liveness check", r"is_socket_readable|get_extra_info"),
    ("http client (python)", r"\((httpx2|httpcore2|h11|httpx|httpcore)/"),
    ("http server (python)", r"\(uvicorn/"),
    ("starlette/anyio", r"\((starlette|anyio)/"),
    ("pydantic", r"\(pydantic"),
    ("json", r"\(json/"),
    ("logging", r"\(logging/"),
    ("ppacer.scheduler", r"\(ppacer/scheduler/"),
    ("ppacer.executor", r"\(ppacer/executor/"),
    ("ppacer.db", r"\(ppacer/db/"),
    ("ppacer (other)", r"\(ppacer/"),
    ("asyncio", r"\(asyncio/"),
    ("threads: locks, waits, pool", r"\((threading\.py|queue\.py|concurrent/)"),
]
_STARTUP = re.compile(
    r"_find_and_load|Scheduler\.(start|__init__) |LocalRunner\.__init__|Executor\.__init__"
    r"|build_registry|run_startup"
)
_FRAME = re.compile(r"^(.*) \((.*):(\d+)\)$")


# Innermost frames of a thread waiting for work (``--busy`` drops them): the event
# loop's select, a lock, a condition, a queue, a sleep in an idle loop.
_WAITING = re.compile(
    r"^(select \(.*selectors\.py|wait \(.*threading\.py|_wait_for_tstate_lock|"
    r"get \(.*queue\.py|_run \(.*sampler\.py|run_executor \(.*procs\.py|"
    # uvloop's loop is C: in it (epoll, or uvloop's and httptools' own C) shows as this.
    r"run \(.*asyncio/runners\.py|_loop \(.*executor/workers\.py)"
)


def read(
    path: Path, keep_startup: bool, busy: bool = False, thread: str | None = None
) -> list[tuple[list[str], int]]:
    """(frames outermost first, samples) per line of a py-spy raw file (or ``sampler.py``'s);
    ``busy``: without waiting threads; ``thread``: only threads whose name has that text."""
    out = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if not keep_startup and _STARTUP.search(stack):
            continue
        if busy and _WAITING.search(frames[-1]):
            continue
        if thread is not None and thread not in frames[0]:
            continue
        out.append((frames, int(count)))
    return out


def layer(frame: str) -> str:
    """The layer a frame belongs to."""
    for name, pattern in LAYERS:
        if re.search(pattern, frame):
            return name
    return "other"


def short(frame: str) -> str:
    """``function (package/module.py)`` without the line and the site-packages prefix."""
    m = _FRAME.match(frame)
    if m is None:
        return frame
    func, file = m.group(1), m.group(2)
    file = re.sub(r"^.*/(site-packages|python3\.\d+|src)/", "", file)
    return f"{func} ({file})"


def summarise(
    path: Path, top: int, keep_startup: bool, busy: bool = False, thread: str | None = None
) -> str:
    """The report for one file."""
    stacks = read(path, keep_startup, busy, thread)
    total = sum(n for _, n in stacks) or 1
    threads: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, n in stacks:
        thread = frames[0] if frames[0].startswith(("thread", "process")) else "-"
        body = frames[1:] if thread != "-" else frames
        threads[thread] += n
        if body:
            layers[layer(body[-1])] += n
        for name in {short(f) for f in body}:
            inclusive[name] += n
    lines = [f"== {path.name}: {total} samples"]
    lines += ["  threads:"] + [f"    {n / total:6.1%}  {t}" for t, n in threads.most_common(8)]
    lines += ["  by layer (innermost frame):"] + [
        f"    {n / total:6.1%}  {name}" for name, n in layers.most_common()
    ]
    lines += [f"  top {top} functions (inclusive):"] + [
        f"    {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--keep-startup", action="store_true")
    parser.add_argument(
        "--busy", action="store_true", help="leave out threads waiting (sampler.py's files)"
    )
    parser.add_argument("--thread", default=None, help="only threads whose name has this text")
    args = parser.parse_args()
    for path in args.files:
        print(summarise(path, args.top, args.keep_startup, args.busy, args.thread))
        print()


if __name__ == "__main__":
    main()
