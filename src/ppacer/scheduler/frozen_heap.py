"""The scheduler's long-lived objects, kept out of the garbage collector's full passes.

A scheduler holds its registry (every DAG, task and node), its parts and the
modules it imported for as long as it runs. Python's cyclic collector walks all
of them in each full (oldest-generation) pass, and a burst of allocations (10,000
runs due at one minute) sets such passes off: 28-70 ms each with 10,000 one-task
DAGs here, on the event loop, in the middle of creating the runs. ``gc.freeze()``
moves the objects alive when the scheduler starts to a generation the collector
skips; garbage made later is collected as before.

The command line loads its modules frozen (:mod:`ppacer.__main__`). The
processes ppacer runs as a server collect what is garbage and freeze their heap
once started
(:meth:`ppacer.local.LocalRunner.serve_forever`: ``ppacer run``, ``ppacer
scheduler``), and unfreeze it when they stop. A program that embeds the
scheduler's app may do the same around its server with :func:`frozen_heap`
(not done for it: a frozen object that becomes garbage in a cycle is only
collected once unfrozen, and a library cannot know when its host is done). A
hot reload of a frozen scheduler unfreezes, collects (the old DAGs) and freezes
again.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["frozen_heap", "refreeze"]

_lock = threading.Lock()
_holders = 0


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Freeze the objects alive now for the block (nested and concurrent blocks share it)."""
    global _holders
    with _lock:
        _holders += 1
        if _holders == 1:
            # What is garbage now is not kept: the command line loads its modules
            # frozen (ppacer.__main__), the few cycles they left included.
            gc.unfreeze()
            gc.collect()
        gc.freeze()
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                gc.unfreeze()


def refreeze() -> None:
    """Let what was frozen be collected once (old DAGs after a reload), then freeze again."""
    with _lock:
        if _holders == 0:
            return
        gc.unfreeze()
        gc.collect()
        gc.freeze()
