"""Logging: the console handler at ``PPACER_LOG_LEVEL`` and the JSON line format.

With ``PPACER_LOG_FORMAT=json`` every line is one JSON object with ``ts``,
``level``, ``logger``, ``message`` and, when known, ``dag_id``, ``run_id``,
``task_id``, ``exec_ts`` and ``retry`` (task records carry them; the
scheduler's lines have them parsed from their ``dagId=... runId=...`` text).
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "PPACER_ENV_LOG_FORMAT",
    "PPACER_ENV_LOG_LEVEL",
    "JsonLogFormatter",
    "configure_logging",
]

#: Environment variable with the log level (DEBUG, INFO, WARNING, ERROR), as in the original.
PPACER_ENV_LOG_LEVEL = "PPACER_LOG_LEVEL"
#: Environment variable with the log format: "text" (default) or "json" (JSON lines).
PPACER_ENV_LOG_FORMAT = "PPACER_LOG_FORMAT"


def configure_logging(level: str | None = None, log_format: str | None = None) -> None:
    """Log to stderr at ``PPACER_LOG_LEVEL`` (default INFO) in ``PPACER_LOG_FORMAT``.

    The format is "text" (the original's style) or "json": one JSON object per
    line with ``ts``, ``level``, ``logger``, ``message`` and, when known,
    ``dag_id``, ``run_id``, ``task_id``, ``exec_ts`` and ``retry``.
    """
    name = (level or os.environ.get(PPACER_ENV_LOG_LEVEL) or "INFO").upper()
    if name not in logging.getLevelNamesMapping():
        raise ValueError(f"{PPACER_ENV_LOG_LEVEL}: unknown log level {name!r}")
    fmt = (log_format or os.environ.get(PPACER_ENV_LOG_FORMAT) or "text").lower()
    if fmt not in ("text", "json"):
        raise ValueError(f"{PPACER_ENV_LOG_FORMAT}: must be 'text' or 'json', got {fmt!r}")
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "ppacer_console", False)]
    if not root.handlers or ours:
        handler = ours[0] if ours else logging.StreamHandler()
        formatter: logging.Formatter
        if fmt == "json":
            formatter = JsonLogFormatter()
        else:
            formatter = logging.Formatter(
                "%(asctime)s %(levelname)s %(message)s", "%Y/%m/%d %H:%M:%S"
            )
        handler.setFormatter(formatter)
        if not ours:
            handler.ppacer_console = True  # type: ignore[attr-defined]
            root.addHandler(handler)
    root.setLevel(logging.getLevelNamesMapping()[name])
    # One line per HTTP request from the executor's client is noise at INFO, and so are
    # Alembic's plugin set-up lines (its "Running upgrade ..." lines stay).
    for noisy in ("httpx2", "httpcore2", "httpx", "httpcore", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


# Fields the scheduler writes into its messages ("... dagId=x execTs=y runId=3").
_MESSAGE_FIELDS = re.compile(r"\b(dagId|execTs|taskId|runId|retry)=(\S+)")
_FIELD_NAMES = {
    "dagId": "dag_id",
    "execTs": "exec_ts",
    "taskId": "task_id",
    "runId": "run_id",
    "retry": "retry",
}
# Record attributes carrying a task attempt's identity (see ppacer.dag.task.task_logger).
_RECORD_FIELDS = {
    "ppacer_dag_id": "dag_id",
    "ppacer_exec_ts": "exec_ts",
    "ppacer_task_id": "task_id",
    "ppacer_retry": "retry",
    "ppacer_run_id": "run_id",
    "dag_id": "dag_id",
    "exec_ts": "exec_ts",
    "task_id": "task_id",
    "run_id": "run_id",
}


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, and dag_id/run_id/task_id if known.

    The identity comes from the record (task loggers carry it) or, for the
    scheduler's own lines, from ``dagId=... runId=...`` in the message.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a JSON line."""
        message = record.getMessage()
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        for match in _MESSAGE_FIELDS.finditer(message):
            value: Any = match.group(2)
            if match.group(1) in ("runId", "retry") and value.isdigit():
                value = int(value)
            data[_FIELD_NAMES[match.group(1)]] = value
        for attr, key in _RECORD_FIELDS.items():
            value = getattr(record, attr, None)
            if value is not None:
                data[key] = value
        attrs = getattr(record, "ppacer_attrs", None)
        if attrs:
            data["attributes"] = attrs
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)
