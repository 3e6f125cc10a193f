"""Notifications: the :class:`Notifier` protocol, the message, and how they are sent.

The scheduler calls :func:`send_safely`: a notifier that fails is logged and
never breaks scheduling, and notifiers that talk to the network
(``is_blocking = True``, the default) are called on a background thread of
their own, so a slow webhook never delays a task, nor another notifier. Built
in: :class:`LogNotifier` (the default),
:class:`~ppacer.notify.webhook.WebhookNotifier`, ``SlackNotifier``,
``DiscordNotifier``, ``TelegramNotifier`` and
:class:`~ppacer.notify.email.EmailNotifier`; :class:`MultiNotifier` sends to several.
The message and the protocol are :mod:`ppacer.notify.message`, the background
threads :mod:`ppacer.notify.dispatch`; their public names are importable from here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ppacer.notify.dispatch import MAX_QUEUED, _Dispatcher, _send_logged
from ppacer.notify.message import DEFAULT_TEMPLATE, Message, Notifier

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
