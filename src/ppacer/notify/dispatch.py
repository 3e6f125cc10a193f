"""Sending notifications in the background: one bounded queue and one thread per notifier.

:func:`ppacer.notify.send_safely` hands the messages of a notifier that talks
to the network to the dispatcher here, so a slow webhook delays only its own
messages, never the scheduler nor another notifier. The package's own
machinery: :mod:`ppacer.notify` uses it and re-exports :data:`MAX_QUEUED`.
"""

from __future__ import annotations

import collections
import logging
import threading

from ppacer.notify.message import Message, Notifier

__all__ = ["MAX_QUEUED"]

log = logging.getLogger("ppacer.notify")

#: Messages queued for one notifier before further ones are dropped (and logged).
MAX_QUEUED = 1000


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
