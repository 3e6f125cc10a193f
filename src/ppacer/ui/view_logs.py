"""What the log view shows: one attempt's lines, numbered, filtered by level and text.

Every line keeps its number in the attempt's log (``#L<n>``, the anchor log
search links to) whatever the filters hide; the live tail goes on from the
number of lines read, filtered the same way. Messages and attributes are shown
redacted: passwords in URLs and the scheduler's token are masked
(:func:`ppacer.scheduler.reads.redact_log_text`). The download is the same
lines as plain text, read a page at a time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from ppacer.dag.status import TaskStatus
from ppacer.db.logsearch import LEVEL_RANK
from ppacer.scheduler.core import SchedulerCore
from ppacer.scheduler.log_reads import redact_log_text
from ppacer.timeutils import parse_ts
from ppacer.ui.textmatch import mark_substring

__all__ = ["LEVELS", "MAX_LOG_LINES", "LogRow", "log_text", "logs_view"]

#: Lines read for one page of the log view.
MAX_LOG_LINES = 5000
#: The level filter's choices: each shows its level and those above it.
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True)
class LogRow:
    """A line as shown: its number in the attempt's log, time, level, marked message."""

    pos: int
    insert_ts: str
    level: str
    message: Markup
    attributes: str


def _keeps(level: str, min_rank: int) -> bool:
    # Levels this ppacer does not know (a client's own) are shown at INFO's rank.
    return LEVEL_RANK.get(level.upper(), LEVEL_RANK["INFO"]) >= min_rank


def _attrs(attributes: dict[str, Any], secrets: Collection[str]) -> str:
    if not attributes:
        return ""
    return redact_log_text(json.dumps(attributes, ensure_ascii=False, default=str), secrets)


def logs_view(
    scheduler: SchedulerCore,
    run_id: int,
    task_id: str,
    retry: int | None,
    offset: int,
    *,
    min_level: str = "",
    grep: str = "",
    secrets: Collection[str] = (),
) -> dict[str, Any]:
    """Lines of one attempt (the latest unless ``retry``) from ``offset`` on, filtered."""
    page = scheduler.reads.log_page(run_id, task_id, retry, offset=offset, limit=MAX_LOG_LINES)
    min_rank = LEVEL_RANK.get(min_level.upper(), 0)
    needle = grep.strip()
    rows = []
    for pos, line in enumerate(page.lines, start=offset):
        if min_rank and not _keeps(line.level, min_rank):
            continue
        message = redact_log_text(line.message, secrets)
        if needle and needle.lower() not in message.lower():
            continue
        marked = mark_substring(message, needle) if needle else Markup(escape(message))
        rows.append(
            LogRow(pos, line.insert_ts, line.level, marked, _attrs(line.attributes, secrets))
        )
    return {
        "run": page.run,
        "retry": page.retry,
        "retries": list(page.retries),
        "rows": rows,
        "read": len(page.lines),
        "offset": page.offset,
        "next_offset": page.next_offset,
        "status": str(page.status),
        "live": page.status is not TaskStatus.NO_STATUS and not page.finished,
        "has_logs_db": page.has_logs_db,
        "truncated": len(page.lines) >= MAX_LOG_LINES,
    }


def log_text(
    scheduler: SchedulerCore,
    run_id: int,
    task_id: str,
    retry: int | None,
    secrets: Collection[str] = (),
) -> tuple[str, Iterator[str]]:
    """A file name and the attempt's whole log as lines of plain text (read page by page).

    Each line: ``<UTC time> <LEVEL> <message>`` and its attributes as JSON;
    the first page is read now (so a missing run or task is an error before
    anything is sent).
    """
    reads = scheduler.reads
    first = reads.log_page(run_id, task_id, retry, offset=0, limit=MAX_LOG_LINES)
    raw = f"{first.run.dag_id}-run{run_id}-{task_id}-attempt{first.retry}"
    # Ids may hold any character: the file name (a header) keeps a safe few.
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", raw)[:150] + ".log"

    def lines() -> Iterator[str]:
        page_lines, offset = first.lines, 0
        while True:
            for line in page_lines:
                at = parse_ts(line.insert_ts).replace(tzinfo=None).isoformat(" ", "microseconds")
                text = redact_log_text(line.message, secrets)
                attrs = _attrs(line.attributes, secrets)
                yield f"{at} UTC {line.level:<8} {text}{'  ' + attrs if attrs else ''}\n"
            if len(page_lines) < MAX_LOG_LINES:
                return
            offset += len(page_lines)
            page_lines = reads.log_lines(
                first.run, task_id, first.retry, offset=offset, limit=MAX_LOG_LINES
            )

    return name, lines()
