"""What the DAG page shows: the grid of runs x tasks, graph, durations, parameters, code.

The grid is Airflow's most used view: one column per run (oldest on the
left, 100 a page, keyset-paged by logical time), one row per task, a cell
coloured by the task's latest attempt in that run and linking to its log.
5,000 cells are built here as strings (escaped once per task), not by Jinja
loops: a big page renders in tens of milliseconds. What lives in the
scheduler's memory (next run, schedule preview) is read on the event loop by
the handler and passed in; everything here reads the database.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from ppacer.dag.dag import Dag
from ppacer.dag.status import TaskStatus
from ppacer.dag.task import task_source
from ppacer.db import dagruns as runs_db
from ppacer.db import dagruntasks as tasks_db
from ppacer.db.dags import TaskRow
from ppacer.errors import NotFoundError
from ppacer.scheduler.core import SchedulerCore
from ppacer.scheduler.log_reads import attempt_over
from ppacer.timeutils import parse_ts
from ppacer.ui.charts import DurationBar, durations_chart
from ppacer.ui.codediff import DiffLine, changed_fields, diff_sources
from ppacer.ui.display import status_class
from ppacer.ui.graph import Graph, TaskShape, layout_graph
from ppacer.ui.paramscan import params_read
from ppacer.ui.times import format_duration_s
from ppacer.ui.timing import Span, split_time

__all__ = ["GRID_RUNS", "CodeView", "DagPage", "Grid", "ParamInfo", "dag_page", "preview_rows"]

#: Runs per page of the grid (and in the durations chart and the parameters seen).
GRID_RUNS = 100
#: Stored versions of a task listed (newest first).
VERSIONS_SHOWN = 20


@dataclass(frozen=True, slots=True)
class Grid:
    """A page of the grid: runs oldest first, tasks in graph order, the cells as markup."""

    runs: list[runs_db.DagRunRow]
    task_ids: list[str]
    header: Markup
    body: Markup
    # Keyset links: ``before=`` the oldest run shown, ``after=`` the newest (None: no page).
    older: str | None
    newer: str | None
    is_latest: bool


@dataclass(frozen=True, slots=True)
class ParamInfo:
    """A run parameter: which tasks read it (with their default), and its recent values."""

    name: str
    read_by: list[tuple[str, str | None]]
    # In how many of the runs on the grid's page it was given, and its latest values.
    seen: int
    values: list[str]


@dataclass(slots=True)
class CodeView:
    """A task's code at the current version, and what changed from an older one."""

    task_id: str
    # Every task with how many versions are stored.
    tasks: list[tuple[str, int]]
    versions: list[TaskRow]
    current: TaskRow | None
    compare: TaskRow | None
    compare_index: int
    diff: list[DiffLine] = field(default_factory=list)
    fields: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass(slots=True)
class DagPage:
    """Everything the DAG page shows."""

    dag_id: str
    dag: Dag | None
    paused: bool
    grid: Grid
    graph: Graph
    chart: Markup
    params: list[ParamInfo]
    code: CodeView | None
    latest_run: runs_db.DagRunRow | None
    task_count: int
    # The parameters of the newest run on the page (to trigger one like it).
    latest_params: dict[str, Any] = field(default_factory=dict)


def _task_order(dag: Dag | None, seen: Sequence[str]) -> list[str]:
    ordered = []
    if dag is not None:
        ordered = [i.task_id for i in sorted(dag.tasks.values(), key=lambda i: (i.depth, i.width))]
    known = set(ordered)
    return ordered + sorted({t for t in seen if t not in known})


#: Statuses of attempts that ended (retries are new attempts), as stored.
_OVER = frozenset(str(s) for s in TaskStatus if attempt_over(s))


def _naive(text: str) -> datetime:
    """A stored timestamp as a naive UTC datetime: the grid parses 15,000 of them, and the
    C ISO parser without a zone is the cheapest way."""
    if len(text) == 35 and text.endswith("UTC+00:00"):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(text[:26])
    return parse_ts(text).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class _Cell:
    """An attempt parsed once, for its cell and its run's bar."""

    retry: int
    status: str
    span: Span

    @property
    def duration_s(self) -> float | None:
        scheduled, taken, finished, is_over = self.span
        return (finished - (taken or scheduled)).total_seconds() if is_over else None


def _cells(attempts: list[tasks_db.AttemptTimes], now: datetime) -> list[tuple[str, _Cell]]:
    out = []
    for a in attempts:
        is_over = a.status in _OVER
        span = (
            _naive(a.insert_ts),
            _naive(a.start_ts) if a.start_ts is not None else None,
            _naive(a.status_update_ts) if is_over else now,
            is_over,
        )
        out.append((a.task_id, _Cell(a.retry, a.status, span)))
    return out


def _grid(
    runs: list[runs_db.DagRunRow],
    task_ids: list[str],
    latest: dict[str, dict[str, _Cell]],
) -> tuple[Markup, Markup]:
    """The grid's header row and body rows (runs are oldest first)."""
    head = ['<tr><th class="corner">task \\ run</th>']
    for run in runs:
        title = escape(f"#{run.run_id} · {run.exec_ts[:19].replace('T', ' ')} UTC · {run.status}")
        head.append(
            f'<th><a class="rh {status_class(run.status)}" href="/ui/runs/{run.run_id}" '
            f'title="{title}"><span class="sr">#{run.run_id}</span></a></th>'
        )
    head.append("</tr>")
    body = []
    for task_id in task_ids:
        shown, q = escape(task_id), quote(task_id, safe="")
        cells = [f'<tr><th class="task"><a href="?code={q}#code" title="{shown}">{shown}</a></th>']
        for run in runs:
            a = latest[run.exec_ts].get(task_id)
            if a is None:
                cells.append("<td></td>")
                continue
            took = format_duration_s(a.duration_s)
            note = f" · attempt {a.retry}" if a.retry else ""
            cells.append(
                f'<td><a class="c {status_class(a.status)}" '
                f'href="/ui/runs/{run.run_id}/logs?task={q}&amp;retry={a.retry}" '
                f'title="{shown} · #{run.run_id} · {a.status.lower()}'
                f'{" · " + took if took else ""}{note}"></a></td>'
            )
        cells.append("</tr>")
        body.append("".join(cells))
    return Markup("".join(head)), Markup("\n".join(body))


def _params(
    dag: Dag | None, runs: list[runs_db.DagRunRow], given: dict[int, dict[str, Any]]
) -> list[ParamInfo]:
    read_by: dict[str, list[tuple[str, str | None]]] = {}
    if dag is not None:
        for info in dag.tasks.values():
            for name, default in params_read(task_source(info.task)).items():
                read_by.setdefault(name, []).append((info.task_id, default))
    seen: dict[str, int] = {}
    values: dict[str, list[str]] = {}
    for run in reversed(runs):  # newest first
        for name, value in given.get(run.run_id, {}).items():
            seen[name] = seen.get(name, 0) + 1
            text = json.dumps(value, ensure_ascii=False, default=str)
            shown = values.setdefault(name, [])
            if text not in shown and len(shown) < 3:
                shown.append(text if len(text) <= 80 else text[:79] + "…")
    names = sorted(set(read_by) | set(seen))
    return [ParamInfo(n, read_by.get(n, []), seen.get(n, 0), values.get(n, [])) for n in names]


def _code(
    scheduler: SchedulerCore, dag_id: str, task_ids: list[str], wanted: str | None, compare: int
) -> CodeView | None:
    reads = scheduler.reads
    counts = reads.task_version_counts(dag_id)
    tasks = [(t, counts.get(t, (0, ""))[0]) for t in task_ids if t in counts]
    if not tasks:
        return None
    if wanted is None or wanted not in counts:
        # The task changed last, if any did: its diff is what a reader wants to see.
        changed = [t for t, n in tasks if n > 1]
        wanted = max(changed, key=lambda t: counts[t][1]) if changed else tasks[0][0]
    versions = reads.task_versions(dag_id, wanted, VERSIONS_SHOWN)
    current = versions[0] if versions else None
    view = CodeView(wanted, tasks, versions, current, None, 0)
    if current is not None and len(versions) > 1:
        index = min(max(compare, 1), len(versions) - 1)
        view.compare, view.compare_index = versions[index], index
        view.diff = diff_sources(versions[index].body_source, current.body_source)
        view.fields = changed_fields(versions[index], current)
    return view


def dag_page(
    scheduler: SchedulerCore,
    dag_id: str,
    *,
    before: str | None = None,
    after: str | None = None,
    code_task: str | None = None,
    compare: int = 1,
    with_code: bool = True,
) -> DagPage:
    """A DAG's page (``before``/``after``: the grid's keyset page; ``code_task``: whose code)."""
    reads = scheduler.reads
    dag = scheduler.registry.get(dag_id)
    # One run more than a page: whether there is another page past it.
    desc = reads.dag_runs(dag_id, before=before, after=after, limit=GRID_RUNS + 1)
    if dag is None and not desc and dag_id not in reads.known_dag_ids():
        raise NotFoundError(f"dagId: unknown DAG {dag_id!r}")
    if after is not None:  # the runs just after ``after``: the extra one is the newest
        has_newer, has_older = len(desc) > GRID_RUNS, True
        desc = desc[1:] if has_newer else desc
    else:
        has_newer, has_older = before is not None, len(desc) > GRID_RUNS
        desc = desc[:GRID_RUNS]
    runs = list(reversed(desc))
    rows = reads.run_attempts(dag_id, [r.exec_ts for r in runs])
    now = scheduler.clock.now().astimezone(UTC).replace(tzinfo=None)
    parsed = {exec_ts: _cells(attempts, now) for exec_ts, attempts in rows.items()}
    # Each task's latest attempt (rows come in retry order: the last one wins).
    latest = {exec_ts: dict(cells) for exec_ts, cells in parsed.items()}
    task_ids = _task_order(dag, sorted({t for by_task in latest.values() for t in by_task}))
    header, body = _grid(runs, task_ids, latest)
    is_latest = not has_newer
    grid = Grid(
        runs,
        task_ids,
        header,
        body,
        older=runs[0].exec_ts if runs and has_older else None,
        newer=runs[-1].exec_ts if runs and has_newer else None,
        is_latest=is_latest,
    )
    bars = []
    for run in runs:
        start = _naive(run.insert_ts)
        end = _naive(run.status_update_ts) if run.status.is_finished else now
        timing = split_time((cell.span for _, cell in parsed[run.exec_ts]), start, end)
        label = run.exec_ts[:19].replace("T", " ") + " UTC"
        bars.append(
            DurationBar(
                run.run_id,
                label,
                str(run.status),
                timing.running_s,
                timing.queued_s,
                timing.other_s,
            )
        )
    newest = latest.get(runs[-1].exec_ts, {}) if runs and is_latest else {}
    given = reads.runs_params([r.run_id for r in runs])
    shapes = []
    if dag is not None:
        shapes = [TaskShape(i.task_id, i.depth, i.width, i.children) for i in dag.tasks.values()]
    return DagPage(
        dag_id=dag_id,
        dag=dag,
        paused=dag_id in reads.paused_dags(),
        grid=grid,
        graph=layout_graph(shapes, {t: a.status for t, a in newest.items()}),
        chart=durations_chart(bars),
        params=_params(dag, runs, given),
        code=_code(scheduler, dag_id, task_ids, code_task, compare) if with_code else None,
        latest_run=runs[-1] if runs and is_latest else None,
        task_count=len(dag.tasks) if dag is not None else len(task_ids),
        latest_params=given.get(runs[-1].run_id, {}) if runs else {},
    )


def preview_rows(points: list[dict[str, str]]) -> list[tuple[datetime, str]]:
    """Schedule points as :meth:`SchedulerCore.schedule_preview` gives them: the UTC time,
    and the time in the schedule's zone as text (``2024-03-31 03:00:00+02:00``)."""
    return [
        (parse_ts(p["utc"]), datetime.fromisoformat(p["local"]).isoformat(" ", "seconds"))
        for p in points
    ]
