"""Notifications: the :class:`Notifier` protocol and the default log notifier.

A notifier that fails is logged and never breaks scheduling: the scheduler
calls :func:`send_safely`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

__all__ = ["LogNotifier", "Message", "Notifier", "send_safely"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Message:
    """What a notification is about."""

    # "task_failed", "task_retry" or "dag_run_failed".
    kind: str
    dag_id: str
    exec_ts: str
    task_id: str | None = None
    retry: int | None = None
    error: str | None = None

    def text(self) -> str:
        """A one-line human description."""
        where = f"DAG {self.dag_id!r} run {self.exec_ts}"
        if self.task_id is not None:
            where += f" task {self.task_id!r} (retry {self.retry})"
        what = {"task_failed": "failed", "task_retry": "failed, will retry"}.get(
            self.kind, "DAG run failed"
        )
        return f"{where}: {what}" + (f": {self.error}" if self.error else "")


class Notifier(Protocol):
    """Sends a notification somewhere (a log, a webhook, e-mail, ...)."""

    def send(self, message: Message) -> None:
        """Send ``message``; may raise, the caller logs it."""
        ...


class LogNotifier:
    """The default notifier: an ERROR line in the scheduler's log."""

    def send(self, message: Message) -> None:
        """Log ``message`` at ERROR level."""
        log.error("ALERT %s", message.text())


def send_safely(notifier: Notifier | None, message: Message) -> None:
    """Send through ``notifier``, logging (never raising) any error."""
    if notifier is None:
        return
    try:
        notifier.send(message)
    except Exception:
        log.exception("notifier %r failed to send %s", notifier, message.kind)
