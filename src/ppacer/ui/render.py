"""Templates and their helpers: one Jinja2 environment (autoescaping on), Pygments highlighting."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from pygments import highlight  # type: ignore[import-untyped]
from pygments.formatters import HtmlFormatter  # type: ignore[import-untyped]
from pygments.lexers import PythonLexer  # type: ignore[import-untyped]

from ppacer.timeutils import Clock, SystemClock
from ppacer.ui.display import badge, status_class
from ppacer.ui.times import format_duration_s, time_tag, when_tag

__all__ = ["HERE", "Templates", "highlight_python", "pygments_css"]

HERE = Path(__file__).parent

_FORMATTER = HtmlFormatter(cssclass="hl", linenos="table", wrapcode=True)


@functools.lru_cache(maxsize=512)
def highlight_python(source: str) -> Markup:
    """Python source as highlighted HTML (Pygments escapes the code itself)."""
    return Markup(highlight(source, PythonLexer(), _FORMATTER))


@functools.lru_cache(maxsize=1)
def pygments_css() -> str:
    """The CSS of the highlighting (light and dark schemes)."""
    light = HtmlFormatter(style="default").get_style_defs(".hl")
    dark = HtmlFormatter(style="monokai").get_style_defs(".hl")
    return f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _compact_json(value: Any) -> str:
    """JSON on one line, as plain text (autoescaped where it is shown)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def _json_text(value: str | None) -> str:
    """Stored JSON text, indented when it parses."""
    if value is None:
        return ""
    try:
        return _pretty_json(json.loads(value))
    except ValueError:
        return value


class Templates:
    """Renders the UI's templates with times shown in ``timezone`` (``clock``: "ago" times)."""

    def __init__(self, timezone: str, clock: Clock | None = None) -> None:
        self.zone = ZoneInfo(timezone)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["ts"] = lambda v: time_tag(v, self.zone)
        self.env.filters["ts_ms"] = lambda v: time_tag(v, self.zone, precise=True)
        self.env.filters["when"] = lambda v: when_tag(v, self.zone, self.clock.now())
        self.env.filters["duration"] = format_duration_s
        self.env.filters["status_class"] = status_class
        self.env.filters["badge"] = badge
        self.env.filters["pretty_json"] = _pretty_json
        self.env.filters["compact_json"] = _compact_json
        self.env.filters["json_text"] = _json_text
        self.env.filters["python"] = highlight_python
        self.env.globals["timezone"] = timezone

    def render(self, name: str, **context: Any) -> str:
        """Render template ``name`` with ``context``."""
        return self.env.get_template(name).render(**context)
