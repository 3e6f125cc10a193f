"""One back-off policy: growing waits between tries, capped, interruptible by a stop event.

The executor backs off in four places - polling an unreachable scheduler,
polling one without long polls that answers "nothing" at once, retrying a
status report, retrying a failed heartbeat - and all four use :class:`Backoff`.

Why a class of our own and not ``tenacity`` or ``backoff`` from PyPI: both
are built around retrying a *function* that raises, with ``time.sleep``
between tries by default. Two of our four uses raise nothing (an empty poll
is an answer, not an error) and one must not sleep at all (the heartbeat
supervisor waits on a condition that other threads signal, so it only asks
*how long* the next gap is). Every wait must also end at once when the
executor stops, which takes a custom sleep function in ``tenacity`` and is not
offered by ``backoff``. What we need is the delay sequence and an
interruptible wait: about forty lines, and one dependency fewer.
"""

from __future__ import annotations

import threading

__all__ = ["Backoff"]


class Backoff:
    """Delays that grow from ``first_s`` (times ``factor``, plus ``step_s``) up to ``cap_s``.

    Not thread-safe: each loop owns its instance. :meth:`reset` after a
    success starts again from ``first_s``.
    """

    __slots__ = ("_next_s", "cap_s", "factor", "first_s", "step_s", "steps")

    def __init__(
        self, *, first_s: float, cap_s: float, factor: float = 2.0, step_s: float = 0.0
    ) -> None:
        if not 0 <= first_s <= cap_s or factor < 1 or step_s < 0:
            raise ValueError(
                f"Backoff needs 0 <= first_s <= cap_s, factor >= 1 and step_s >= 0; got "
                f"first_s={first_s}, cap_s={cap_s}, factor={factor}, step_s={step_s}"
            )
        self.first_s = first_s
        self.cap_s = cap_s
        self.factor = factor
        self.step_s = step_s
        #: Delays handed out since the last :meth:`reset` (0: not backing off).
        self.steps = 0
        self._next_s = first_s

    @classmethod
    def exponential(cls, first_s: float, cap_s: float, factor: float = 2.0) -> Backoff:
        """``first_s``, ``first_s * factor``, ... up to ``cap_s``."""
        return cls(first_s=first_s, cap_s=cap_s, factor=factor)

    @classmethod
    def linear(cls, step_s: float, cap_s: float) -> Backoff:
        """``step_s``, ``2 * step_s``, ``3 * step_s``, ... up to ``cap_s``."""
        return cls(first_s=step_s, cap_s=cap_s, factor=1.0, step_s=step_s)

    def next_s(self) -> float:
        """The next delay in seconds (and move on to the one after it)."""
        delay = self._next_s
        self._next_s = min(self.cap_s, delay * self.factor + self.step_s)
        self.steps += 1
        return delay

    def reset(self) -> None:
        """Start again from the first delay (after a success)."""
        self.steps = 0
        self._next_s = self.first_s

    def wait(self, stop: threading.Event) -> bool:
        """Wait the next delay or until ``stop`` is set; True if ``stop`` is set."""
        return stop.wait(self.next_s())
