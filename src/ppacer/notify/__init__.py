"""Notifications: the :class:`Notifier` protocol, the message, and how they are sent.

The scheduler calls :func:`send_safely`: a notifier that fails is logged and
never breaks scheduling, and notifiers that talk to the network
(``is_blocking = True``, the default) are called on a background thread of
their own, so a slow webhook never delays a task, nor another notifier. Built
in: :class:`LogNotifier` (the default),
:class:`~ppacer.notify.webhook.WebhookNotifier`, ``SlackNotifier``,
``DiscordNotifier``, ``TelegramNotifier`` and
:class:`~ppacer.notify.email.EmailNotifier`; :class:`MultiNotifier` sends to several.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

__all__ = [
    "DEFAULT_TEMPLATE",
    "MAX_QUEUED",
    "LogNotifier",
    "Message",
    "MultiNotifier",
    "Notifier",
    "flush",
    "send_safely",
]

log = logging.getLogger("ppacer.notify")

#: Messages queued for one notifier before further ones are dropped (and logged).
MAX_QUEUED = 1000

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


class LogNotifier:
    """The default notifier: an ERROR line in the scheduler's log (as the seed's)."""

    # Cheap and local: called inline, not on the background thread.
    is_blocking = False

    def send(self, message: Message) -> None:
        """Log ``message`` at ERROR level."""
        log.error("ALERT %s", message.text())


class MultiNotifier:
    """Sends each message to every notifier given; one failing does not stop the others."""

    def __init__(self, notifiers: Iterable[Notifier]) -> None:
        self.notifiers = list(notifiers)

    def send(self, message: Message) -> None:
        """Send to each notifier, logging failures."""
        for notifier in self.notifiers:
            _send_logged(notifier, message)


def _send_logged(notifier: Notifier, message: Message) -> None:
    try:
        notifier.send(message)
    except Exception:
        log.exception("notifier %r failed to send %s", notifier, message.kind)


class _Lane:
    """The messages waiting for one notifier, sent in order by one thread."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.messages: collections.deque[Message] = collections.deque()
        self.dropped = 0


class _Dispatcher:
    """Sends notifications in the background, one lane per notifier.

    Each notifier has its own bounded queue and thread, so a slow one (a webhook
    waiting out its timeout) delays only its own messages. A lane's thread ends
    when its queue is empty and starts again with the next message; a message
    for a full queue is dropped and logged, never blocking the scheduler.
    """

    def __init__(self, max_queued: int = MAX_QUEUED) -> None:
        self.max_queued = max_queued
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        # By id(notifier); a lane holds its notifier, so the id is not reused meanwhile.
        self._lanes: dict[int, _Lane] = {}

    def submit(self, notifier: Notifier, message: Message) -> None:
        with self._lock:
            lane = self._lanes.get(id(notifier))
            is_new = lane is None
            if lane is None:
                lane = self._lanes[id(notifier)] = _Lane(notifier)
            is_full = len(lane.messages) >= self.max_queued
            if is_full:
                lane.dropped += 1
            else:
                lane.messages.append(message)
        if is_full:
            if lane.dropped == 1:
                log.warning(
                    "notifier %r is behind by %d messages; dropping %s and further ones",
                    notifier,
                    self.max_queued,
                    message.kind,
                )
            return
        if is_new:
            threading.Thread(
                target=self._run, args=(lane,), name="ppacer-notify", daemon=True
            ).start()

    def _run(self, lane: _Lane) -> None:
        while True:
            with self._lock:
                if not lane.messages:
                    del self._lanes[id(lane.notifier)]
                    self._idle.notify_all()
                    break
                message = lane.messages.popleft()
            _send_logged(lane.notifier, message)
        if lane.dropped:
            log.warning("notifier %r: %d messages were dropped", lane.notifier, lane.dropped)

    def flush(self, timeout_s: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: not self._lanes, timeout_s)


_dispatcher = _Dispatcher()


def send_safely(notifier: Notifier | None, message: Message) -> None:
    """Send through ``notifier`` without ever raising or blocking the caller on the network.

    The notifiers of a :class:`MultiNotifier` are sent to separately, so a slow
    one does not delay the others.
    """
    if notifier is None:
        return
    if isinstance(notifier, MultiNotifier):
        for each in notifier.notifiers:
            send_safely(each, message)
    elif getattr(notifier, "is_blocking", True):
        _dispatcher.submit(notifier, message)
    else:
        _send_logged(notifier, message)


def flush(timeout_s: float = 10.0) -> bool:
    """Wait until queued notifications are sent; True if all were (for shutdown and tests)."""
    return _dispatcher.flush(timeout_s)
