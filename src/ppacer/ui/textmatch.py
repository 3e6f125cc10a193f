"""Found words in text, marked for the page: search hits and the log view's "search within".

Text is escaped piece by piece and only the ``<mark>`` tags are markup, so a
message full of HTML stays text. Words are found as the log index sees them
(runs of letters and digits, case folded; :mod:`ppacer.db.logsearch`), so
what is marked is what matched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from markupsafe import Markup, escape

from ppacer.db.logsearch import Term

__all__ = ["mark_substring", "mark_terms"]

_WORD = re.compile(r"[^\W_]+")
_MARK = Markup("<mark>{}</mark>")


def _join(text: str, spans: Sequence[tuple[int, int]], start: int, end: int) -> Markup:
    out = []
    at = start
    for s, e in spans:
        if e <= start or s >= end:
            continue
        s, e = max(s, start), min(e, end)
        out.append(escape(text[at:s]))
        out.append(_MARK.format(text[s:e]))
        at = e
    out.append(escape(text[at:end]))
    return Markup("").join(out)


def _window(text: str, spans: Sequence[tuple[int, int]], max_chars: int | None) -> tuple[int, int]:
    """The part of ``text`` to show: all of it, or ``max_chars`` around the first mark."""
    if max_chars is None or len(text) <= max_chars:
        return 0, len(text)
    first = spans[0][0] if spans else 0
    start = max(0, min(first - max_chars // 4, len(text) - max_chars))
    return start, start + max_chars


def _shown(text: str, spans: Sequence[tuple[int, int]], max_chars: int | None) -> Markup:
    start, end = _window(text, spans, max_chars)
    body = _join(text, spans, start, end)
    return (
        (Markup("…") if start > 0 else Markup(""))
        + body
        + (Markup("…") if end < len(text) else Markup(""))
    )


def mark_terms(text: str, terms: Sequence[Term], max_chars: int | None = None) -> Markup:
    """``text`` with the words of ``terms`` marked (a prefix term: words starting with it).

    With ``max_chars``, a snippet of that length around the first mark.
    """
    exact = {w for t in terms for w in (t.words if not t.prefix else t.words[:-1])}
    prefixes = tuple(t.words[-1] for t in terms if t.prefix)
    spans = []
    for m in _WORD.finditer(text):
        word = m.group().lower()
        if word in exact or (prefixes and word.startswith(prefixes)):
            spans.append(m.span())
    return _shown(text, spans, max_chars)


def mark_substring(text: str, needle: str) -> Markup:
    """``text`` with every occurrence of ``needle`` marked (case-insensitive)."""
    if not needle:
        return Markup(escape(text))
    spans = [m.span() for m in re.finditer(re.escape(needle), text, re.IGNORECASE)]
    return _join(text, spans, 0, len(text))
