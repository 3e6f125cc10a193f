"""What a notification says, and what sends one: the :class:`Message` and the :class:`Notifier`.

A message is one event (a task failed, will retry; a DAG run failed, timed
out) with where and when it happened; notifiers render it with
:data:`DEFAULT_TEMPLATE` or a template of their own. A notifier is anything
with ``send(message)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

__all__ = ["DEFAULT_TEMPLATE", "Message", "Notifier"]

#: The default text of a notification; ``{name}`` placeholders are :class:`Message` fields
#: (plus ``title``); a missing value renders as ``-``.
DEFAULT_TEMPLATE = (
    "[ppacer] {title}\n"
    "DAG: {dag_id}\n"
    "Run: {exec_ts}\n"
    "Task: {task_id} (retry {retry})\n"
    "Error: {error}"
)

_TITLES = {
    "task_failed": "task failed",
    "task_retry": "task failed, will retry",
    "dag_run_failed": "DAG run failed",
    "dag_run_timeout": "DAG run timed out",
}


@dataclass(frozen=True, slots=True)
class Message:
    """What a notification is about (the seed's ``notify.MsgData``)."""

    # "task_failed", "task_retry", "dag_run_failed" or "dag_run_timeout".
    kind: str
    dag_id: str
    exec_ts: str
    task_id: str | None = None
    retry: int | None = None
    error: str | None = None
    run_id: int | None = None
    # Where and when: scheduler host, version, time of the event.
    runtime: Mapping[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        """A short human title: ``DAG 'x' task 'y': task failed``."""
        what = _TITLES.get(self.kind, self.kind)
        if self.task_id is None:
            return f"DAG {self.dag_id!r}: {what}"
        if self.kind.startswith("dag_run"):
            return f"DAG {self.dag_id!r}: {what} (task {self.task_id!r})"
        return f"DAG {self.dag_id!r} task {self.task_id!r}: {what}"

    def text(self) -> str:
        """A one-line human description."""
        where = f"DAG {self.dag_id!r} run {self.exec_ts}"
        if self.task_id is not None:
            where += f" task {self.task_id!r} (retry {self.retry})"
        what = _TITLES.get(self.kind, self.kind)
        return f"{where}: {what}" + (f": {self.error}" if self.error else "")

    def to_dict(self) -> dict[str, Any]:
        """The message as JSON-ready data (used by the webhook notifier)."""
        data = asdict(self)
        data["runtime"] = dict(self.runtime)
        data["title"] = self.title
        return data

    def render(self, template: str = DEFAULT_TEMPLATE) -> str:
        """Fill ``template`` with this message's fields."""
        values = {k: ("-" if v is None else v) for k, v in self.to_dict().items()}
        return template.format_map(_Defaulting(values))


class _Defaulting(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "-"


class Notifier(Protocol):
    """Sends a notification somewhere (a log, a webhook, e-mail, ...)."""

    def send(self, message: Message) -> None:
        """Send ``message``; may raise, the caller logs it."""
        ...
