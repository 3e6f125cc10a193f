"""The composition root (being reshaped): the public Scheduler."""

from ppacer.scheduler.server import Scheduler

__all__ = ["Scheduler"]
