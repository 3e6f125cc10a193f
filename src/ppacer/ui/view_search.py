"""What the search pages show: DAGs and runs from the one search box, log lines by their words.

The box takes words and a few filters in one line::

    hello status:failed from:2024-03-01 to:2024-03-31 name=you #42

- words find DAGs by id, tag or description (each word must match), and the
  runs of the DAGs found; ``tag:x`` a tag exactly;
- ``#42`` (or a number alone) is a run id; ``dag:ID`` runs of one DAG;
- ``status:`` running, queued, success, failed (or a stored status);
- ``from:`` / ``to:`` the runs' logical time (a date, a date and time in the
  UI's zone, or ISO 8601); ``key=value`` a parameter's value (JSON, else
  text), ``param:key`` runs given that parameter.

Runs are found per DAG by one index range each (``(DagId, ExecTs)``), newest
logical time first, and merged: the newest :data:`MAX_RUNS`.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from markupsafe import Markup

from ppacer.dag.dag import Dag
from ppacer.dag.describe import describe_schedule
from ppacer.dag.status import DagRunStatus
from ppacer.db import dagruns as runs_db
from ppacer.db.logsearch import parse_query
from ppacer.errors import InvalidInputError, NotFoundError
from ppacer.scheduler.core import SchedulerCore
from ppacer.scheduler.log_reads import FoundLogLine
from ppacer.timeutils import format_ts
from ppacer.ui.inputs import parse_when
from ppacer.ui.textmatch import mark_terms
from ppacer.ui.view_logs import MAX_LOG_LINES
from ppacer.ui.view_runs import RUN_FILTERS

__all__ = [
    "MAX_RUNS",
    "DagHit",
    "LogSearchView",
    "SearchQuery",
    "SearchResults",
    "log_search",
    "parse_search",
    "search",
]

#: Runs shown at most (the newest by logical time).
MAX_RUNS = 50
#: DAGs whose runs are searched when words chose them (more: narrow the words).
MAX_DAGS_FOR_RUNS = 25
#: Log lines per page of log search.
LOG_PAGE = 50
# A parameter filter that only asks for the key.
_ANY = object()


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """The search box's text, read."""

    text: str = ""
    words: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    run_id: int | None = None
    dag: str | None = None
    statuses: tuple[DagRunStatus, ...] = ()
    from_ts: str | None = None
    to_ts: str | None = None
    # (key, value or _ANY)
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def filters_runs(self) -> bool:
        """Whether anything besides words narrows the runs."""
        return bool(self.dag or self.statuses or self.from_ts or self.to_ts or self.params)

    @property
    def is_empty(self) -> bool:
        """Nothing to search for."""
        return not (self.words or self.tags or self.run_id is not None or self.filters_runs)


def _statuses(text: str) -> tuple[DagRunStatus, ...]:
    name = text.strip().lower()
    if name in RUN_FILTERS:
        return RUN_FILTERS[name]
    try:
        return (DagRunStatus(name.upper()),)
    except ValueError:
        names = ", ".join(list(RUN_FILTERS) + [str(s) for s in DagRunStatus])
        raise InvalidInputError(f"status: one of {names}; got {text!r}") from None


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text.strip())
    except ValueError:
        return False
    return True


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_search(text: str, zone: ZoneInfo, fields: Mapping[str, str] | None = None) -> SearchQuery:
    """Read the search box (see the module's docstring); ``fields`` of the form add to it."""
    try:
        tokens = shlex.split(text)
    except ValueError:  # an unbalanced quote: words as typed
        tokens = text.split()
    words: list[str] = []
    tags: list[str] = []
    params: list[tuple[str, Any]] = []
    found: dict[str, str] = {k: v.strip() for k, v in (fields or {}).items() if v and v.strip()}
    for token in tokens:
        key, colon, rest = token.partition(":")
        if token.startswith("#") and token[1:].isdigit():
            found["run"] = token[1:]
        elif (
            colon
            and rest
            and key.lower()
            in ("dag", "status", "from", "to", "after", "before", "run", "tag", "param")
        ):
            key = {"after": "from", "before": "to"}.get(key.lower(), key.lower())
            if key == "tag":
                tags.append(rest.lower())
            elif key == "param":
                params.append((rest, _ANY))
            else:
                found[key] = rest
        elif "=" in token and not token.startswith("="):
            name, _, value = token.partition("=")
            params.append((name, _value(value)))
        else:
            words.append(token.lower())
    if len(tokens) == 1 and tokens[0].isdigit():
        words, found["run"] = [], tokens[0]
    for part in (found.pop("params", "") or "").split():
        name, eq, value = part.partition("=")
        params.append((name, _value(value)) if eq else (name, _ANY))
    try:
        from_at = parse_when(found["from"], zone) if "from" in found else None
        to_at = parse_when(found["to"], zone, end_of_day=True) if "to" in found else None
        if to_at is not None and _is_date(found["to"]):
            # "to:" is inclusive for runs: a date means up to its last microsecond.
            to_at -= timedelta(microseconds=1)
    except ValueError as exc:
        raise InvalidInputError(f"from/to: {exc} (e.g. 2024-03-11, 2024-03-11 12:00)") from None
    run = found.get("run")
    if run is not None and not run.isdigit():
        raise InvalidInputError(f"run: a run id is a number, got {run!r}")
    return SearchQuery(
        text=text,
        words=tuple(words),
        tags=tuple(tags),
        run_id=int(run) if run is not None else None,
        dag=found.get("dag"),
        statuses=_statuses(found["status"]) if "status" in found else (),
        from_ts=format_ts(from_at) if from_at is not None else None,
        to_ts=format_ts(to_at) if to_at is not None else None,
        params=tuple(params),
    )


@dataclass(frozen=True, slots=True)
class DagHit:
    """A DAG the search found."""

    dag_id: str
    description: str
    tags: tuple[str, ...]
    schedule: str
    registered: bool


@dataclass(slots=True)
class SearchResults:
    """DAGs and runs found."""

    query: SearchQuery
    dags: list[DagHit] = field(default_factory=list)
    runs: list[tuple[runs_db.DagRunRow, dict[str, Any]]] = field(default_factory=list)
    # How many DAGs' runs were searched; whether more runs than shown may match.
    dags_searched: int = 0
    more_runs: bool = False


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _patterns(key: str, value: Any) -> list[str]:
    """LIKE patterns one of which the stored JSON of matching parameters has (first pass)."""
    name = _like(json.dumps(key))
    if value is _ANY:
        return [f"%{name}: %"]
    # A value matches its JSON and its text: "9" finds 9 (and 9 finds "9").
    texts = {json.dumps(value), value if isinstance(value, str) else json.dumps(str(value))}
    return [f"%{name}: {_like(t)}{end}%" for t in sorted(texts) for end in (",", "}")]


def _params_match(given: dict[str, Any], wanted: Sequence[tuple[str, Any]]) -> bool:
    for key, value in wanted:
        if key not in given:
            return False
        if value is not _ANY and given[key] != value and str(given[key]) != str(value):
            return False
    return True


def _dag_matches(hit: DagHit, query: SearchQuery) -> bool:
    text = " ".join((hit.dag_id, hit.description, *hit.tags)).lower()
    return all(w in text for w in query.words) and all(t in hit.tags for t in query.tags)


def search(
    scheduler: SchedulerCore, query: SearchQuery, registry: Mapping[str, Dag]
) -> SearchResults:
    """The DAGs and runs ``query`` finds (``registry``: the DAGs, copied on the event loop,
    where a reload may change them)."""
    reads = scheduler.reads
    out = SearchResults(query)
    zone = scheduler.config.timezone
    known = sorted(set(registry) | set(reads.known_dag_ids()))
    hits = []
    for dag_id in known:
        dag = registry.get(dag_id)
        hits.append(
            DagHit(
                dag_id,
                (dag.description or "") if dag is not None else "",
                tuple(t.lower() for t in dag.attributes.tags) if dag is not None else (),
                describe_schedule(dag.schedule, zone) if dag is not None else "",
                dag is not None,
            )
        )
    if query.words or query.tags:
        out.dags = [h for h in hits if _dag_matches(h, query)]
    if query.run_id is not None:
        try:
            run = reads.run(query.run_id)
        except NotFoundError:
            return out
        out.runs = [(run, reads.runs_params([run.run_id]).get(run.run_id, {}))]
        return out
    if query.dag is not None:
        dag_ids = [query.dag]
    elif query.words or query.tags:
        dag_ids = [h.dag_id for h in out.dags][:MAX_DAGS_FOR_RUNS]
        out.more_runs = len(out.dags) > MAX_DAGS_FOR_RUNS
    elif query.filters_runs:
        dag_ids = known
    else:
        return out
    like = [_patterns(k, v) for k, v in query.params]
    found: list[tuple[runs_db.DagRunRow, dict[str, Any]]] = []
    for dag_id in dag_ids:
        rows = reads.search_runs_of_dag(
            dag_id,
            statuses=query.statuses,
            from_ts=query.from_ts,
            to_ts=query.to_ts,
            params_like=like,
            limit=MAX_RUNS,
        )
        for run, text in rows:
            given = dict(json.loads(text)) if text else {}
            if _params_match(given, query.params):
                found.append((run, given))
        out.more_runs = out.more_runs or len(rows) == MAX_RUNS
    found.sort(key=lambda r: (r[0].exec_ts, r[0].run_id), reverse=True)
    out.more_runs = out.more_runs or len(found) > MAX_RUNS
    out.runs = found[:MAX_RUNS]
    out.dags_searched = len(dag_ids)
    return out


@dataclass(slots=True)
class LogSearchView:
    """A page of log search results, each line marked and linked to its place."""

    lines: list[tuple[FoundLogLine, Markup, str | None]]
    page: int
    has_more: bool
    has_logs_db: bool


def line_url(line: FoundLogLine) -> str | None:
    """The log view of the line's attempt, scrolled to the line (None: its run is gone)."""
    if line.run_id is None:
        return None
    offset = 0 if line.line < MAX_LOG_LINES else line.line - 100
    query = f"task={quote(line.task_id, safe='')}&retry={line.retry}"
    if offset:
        query += f"&offset={offset}"
    return f"/ui/runs/{line.run_id}/logs?{query}#L{line.line + 1}"


def log_search(
    scheduler: SchedulerCore,
    q: str,
    *,
    dag_id: str | None,
    task_id: str | None,
    level: str | None,
    from_ts: str | None,
    to_ts: str | None,
    page: int,
    secrets: Sequence[str],
) -> LogSearchView:
    """A page of log lines matching ``q`` and the filters, newest first."""
    found = scheduler.reads.search_logs(
        q,
        dag_id=dag_id,
        task_id=task_id,
        min_level=level,
        from_ts=from_ts,
        to_ts=to_ts,
        limit=LOG_PAGE,
        offset=(page - 1) * LOG_PAGE,
        secrets=secrets,
    )
    terms = parse_query(q)
    lines = [(f, mark_terms(f.message, terms, max_chars=300), line_url(f)) for f in found.lines]
    return LogSearchView(lines, page, found.has_more, found.has_logs_db)
