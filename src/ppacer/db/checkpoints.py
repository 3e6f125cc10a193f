"""SQLite's WAL checkpoints in a thread of their own, off the scheduler's event loop.

In WAL mode each commit appends pages to ``scheduler.db-wal``. By default the
commit that takes it past 1,000 pages copies them back into the database file
and syncs that file (a checkpoint) before it returns: on the scheduler's event
loop, a pause of a few milliseconds in whichever commit crosses the mark, and
10,000 runs due at one minute cross it several times: their rows written through
the driver alone, 256 a transaction, took 0.08-0.11 s with automatic
checkpoints and 0.06-0.08 s without (six points, twice, here).

While a scheduler runs, its connections checkpoint by themselves only past
:data:`FALLBACK_PAGES` (a safety net), and a :class:`WalCheckpointer` does it
instead: a PASSIVE checkpoint (it never blocks a writer or a reader) from a
connection of its own, in a thread (the driver releases the GIL meanwhile), soon
after the WAL changes. One thread serves a scheduler's databases (the scheduler
DB and the logs DB). It looks every :data:`BUSY_S` while a WAL changes and every
:data:`IDLE_S` while none does (one ``stat`` of each WAL file): an idle scheduler
wakes it once in five seconds; a burst is over before it looks, and checkpointed
at its next look. A checkpoint that could not copy every frame back (a reader
still needed some) is tried again at a later look.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from urllib.parse import quote

__all__ = ["BUSY_S", "FALLBACK_PAGES", "IDLE_S", "WalCheckpointer"]

log = logging.getLogger("ppacer.db")

#: WAL pages past which the scheduler's own connections checkpoint (SQLite's default: 1,000).
FALLBACK_PAGES = 10_000
#: Seconds between looks at the WAL while it changes, and while it does not.
BUSY_S = 0.05
IDLE_S = 5.0


class WalCheckpointer:
    """Checkpoints the SQLite databases at ``paths`` in a daemon thread until :meth:`stop`."""

    def __init__(
        self, paths: Sequence[str], *, busy_s: float = BUSY_S, idle_s: float = IDLE_S
    ) -> None:
        self.paths = tuple(paths)
        self.busy_s = busy_s
        self.idle_s = idle_s
        #: Checkpoints run so far.
        self.checkpoints = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="ppacer-wal-checkpoint", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread after one last checkpoint."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        # Per database: the WAL's stamp at the last look, and at the last checkpoint
        # that copied all of it back.
        looked: dict[str, tuple[int, int] | None] = dict.fromkeys(self.paths)
        copied: dict[str, tuple[int, int] | None] = dict.fromkeys(self.paths)
        while True:
            stopping = self._stop.is_set()
            changed = False
            for path in self.paths:
                # Stamped before the checkpoint: a commit landing meanwhile changes the
                # stamp, and the next look copies it back too.
                stamp = _stamp(path + "-wal")
                changed = changed or stamp != looked[path]
                looked[path] = stamp
                if (stamp != copied[path] or stopping) and self._checkpoint(path):
                    copied[path] = stamp
            if stopping:
                return
            self._stop.wait(self.busy_s if changed else self.idle_s)

    def _checkpoint(self, path: str) -> bool:
        """One PASSIVE checkpoint: whether it copied every frame of the WAL back (if not, a
        reader still needed some, or it failed: a later look tries again, soon while the
        WAL changes, else at the idle pace: a database file gone costs a look in five
        seconds, not a busy loop).

        From a connection of its own each time: a connection kept open was seen to
        report an empty WAL at every later look once its first look had met a writer
        opening the database (the WAL then grew to the fallback's 10,000 pages).
        """
        try:
            # mode=rw: a database file gone is not made again, empty, by this thread.
            conn = sqlite3.connect(
                f"file:{quote(path)}?mode=rw", uri=True, timeout=1.0, check_same_thread=False
            )
        except sqlite3.Error as exc:
            log.debug("WAL checkpoint of %s skipped: %s", path, exc)
            return False
        try:
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # busy, or the file is gone
            log.debug("WAL checkpoint of %s skipped: %s", path, exc)
            return False
        finally:
            conn.close()
        self.checkpoints += 1
        return bool(busy == 0 and copied >= frames)


def _stamp(path: str) -> tuple[int, int]:
    with contextlib.suppress(FileNotFoundError):
        st = os.stat(path)
        return (st.st_size, st.st_mtime_ns)
    return (0, 0)
