"""Combine the JSON lines of several ``run.py`` invocations into one Markdown table.

    python benchmarks/run.py --json results.jsonl          # three times, say
    python benchmarks/run.py --json results.jsonl --db postgresql+psycopg://...
    python benchmarks/combine.py results.jsonl

Each cell is the median over the invocations of a figure (itself a median of
``--runs`` runs where it is a timing), with the lowest and highest in brackets
when there is more than one; the columns are database x deployment.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

_MODES = {"one-process": "one process", "separate": "separate", "-": "no server"}


def load(paths: list[Path]) -> list[dict[str, Any]]:
    """Every figure line (not headers, footers or section lines) of the files."""
    figures = []
    for path in paths:
        for line in path.read_text().splitlines():
            data = json.loads(line)
            if "metric" in data:
                figures.append(data)
    return figures


def _fmt(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def table(figures: list[dict[str, Any]]) -> str:
    """The Markdown table: a row per (workload, metric), a column per (db, mode)."""
    values: dict[tuple[str, str], dict[tuple[str, str], list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    units: dict[tuple[str, str], str] = {}
    targets: dict[tuple[str, str, str], Any] = {}
    columns: list[tuple[str, str]] = []
    for f in figures:
        row = (f["workload"], f["metric"])
        col = (f["db"], f["mode"])
        if col not in columns:
            columns.append(col)
        values[row][col].append(float(f["value"]))
        units[row] = f["unit"]
        targets[(*row, f["db"])] = f.get("target")
    columns.sort(key=lambda c: (c[0] != "sqlite", c[0], c[1]))
    dbs = list(dict.fromkeys(db for db, _ in columns))
    head = ["workload", "figure", "unit"]
    head += [f"{db} {_MODES.get(mode, mode)}" for db, mode in columns]
    head += [f"target ({db})" for db in dbs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, cells in values.items():
        out = [row[0], row[1], units[row]]
        for col in columns:
            found = cells.get(col)
            if not found:
                out.append("")
                continue
            median = statistics.median(found)
            cell = _fmt(median)
            if len(found) > 1:
                cell += f" ({_fmt(min(found))}-{_fmt(max(found))})"
            out.append(cell)
        for db in dbs:
            target = targets.get((*row, db))
            out.append("" if target is None else f"<= {_fmt(target)}")
        lines.append("| " + " | ".join(out) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--only", default="", help="comma-separated workloads to show")
    parser.add_argument("--metrics", default="", help="comma-separated metrics to show")
    args = parser.parse_args()
    figures = load(args.files)
    if args.only:
        figures = [f for f in figures if f["workload"] in args.only.split(",")]
    if args.metrics:
        figures = [f for f in figures if f["metric"] in args.metrics.split(",")]
    print(table(figures))


if __name__ == "__main__":
    main()
