"""A task's code between two stored versions, as the lines of a unified diff.

``dagtasks`` keeps every version of a task (the current one ``IsCurrent = 1``);
the DAG page shows what changed from an older one: source lines removed and
added, with three lines of context, and the other stored fields that differ
(type, config, code version).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from ppacer.db.dags import TaskRow

__all__ = ["DiffLine", "changed_fields", "diff_sources"]


@dataclass(frozen=True, slots=True)
class DiffLine:
    """One line of the diff: ``kind`` is ``add``, ``del``, ``ctx`` or ``hunk``."""

    kind: str
    text: str


def diff_sources(old: str, new: str, context: int = 3) -> list[DiffLine]:
    """The unified diff of two sources (empty when they are equal)."""
    out = []
    lines = difflib.unified_diff(
        old.splitlines(), new.splitlines(), "before", "now", n=context, lineterm=""
    )
    for line in lines:
        if line.startswith(("---", "+++")):
            continue
        kind = {"@": "hunk", "+": "add", "-": "del"}.get(line[:1], "ctx")
        out.append(DiffLine(kind, line))
    return out


def changed_fields(old: TaskRow, new: TaskRow) -> list[tuple[str, str, str]]:
    """Stored fields other than the source that differ: ``(name, before, now)``."""
    fields = (
        ("type", old.type_name, new.type_name),
        ("config", old.config, new.config),
        ("code version", old.code_version or "", new.code_version or ""),
        ("position", f"{old.pos_depth}/{old.pos_width}", f"{new.pos_depth}/{new.pos_width}"),
    )
    return [(name, a, b) for name, a, b in fields if a != b]
