"""WAL checkpoints in a thread: the scheduler's commits do not copy the WAL back themselves."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

from sqlalchemy import text

import ppacer
from ppacer.db.checkpoints import FALLBACK_PAGES, WalCheckpointer
from tests.conftest import wait_for


def _grow_wal(path: Path, rows: int = 600) -> None:
    """Commit ~2.5 MB (about 600 pages) into the WAL, with automatic checkpoints off."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE IF NOT EXISTS blobs (b BLOB)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO blobs VALUES (?)", [(os.urandom(4000),) for _ in range(rows)])
    conn.execute("COMMIT")
    conn.close()


def _quiet_for(checkpointer: WalCheckpointer, seconds: float) -> bool:
    """Whether it made no checkpoint for ``seconds`` (several of its looks)."""
    before = checkpointer.checkpoints
    time.sleep(seconds)
    return checkpointer.checkpoints == before


def test_the_checkpointer_copies_the_wal_back_and_rests_when_nothing_is_written(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a dir & 100%" / "s.db"  # opened by URI: quoted
    path.parent.mkdir()
    _grow_wal(path, rows=1)
    checkpointer = WalCheckpointer([str(path)], busy_s=0.01, idle_s=0.05)
    checkpointer.start()
    try:
        size = path.stat().st_size
        _grow_wal(path)
        wait_for(lambda: path.stat().st_size > size + 2_000_000, 10, "the WAL copied back")
        # Nothing written: it looks at the file (ten times at least here) without
        # checkpointing each time. It settles first: a look that caught the last writes
        # landing checkpoints once more (a loaded machine showed two).
        wait_for(lambda: checkpointer.checkpoints > 0, 10, "a checkpoint counted")
        wait_for(lambda: _quiet_for(checkpointer, 0.2), 10, "the checkpointer at rest")
        done = checkpointer.checkpoints
        time.sleep(0.5)  # nothing to wait for: what is checked is that nothing happens
        assert checkpointer.checkpoints == done
    finally:
        checkpointer.stop()


def test_a_running_scheduler_checkpoints_in_a_thread_not_in_its_commits(tmp_path: Path) -> None:
    db, logs = tmp_path / "s.db", tmp_path / "l.db"
    scheduler = ppacer.Scheduler(str(db), logs_db=str(logs))
    scheduler.start(ppacer.Registry())
    with scheduler.engine.connect() as conn:
        pages = conn.execute(text("PRAGMA wal_autocheckpoint")).scalar()
    assert pages == FALLBACK_PAGES
    assert scheduler._sqlite_files() == [str(db), str(logs)]

    async def main() -> None:
        async with scheduler.running():
            size = db.stat().st_size
            with scheduler.engine.begin() as conn:  # ~2.5 MB through the scheduler's engine
                conn.execute(text("CREATE TABLE blobs (b BLOB)"))
                conn.execute(
                    text("INSERT INTO blobs VALUES (:b)"),
                    [{"b": os.urandom(4000)} for _ in range(600)],
                )
            for _ in range(400):  # the database file grows when the WAL is copied back
                if db.stat().st_size > size + 2_000_000:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("the WAL was not checkpointed within 20 s")

    try:
        asyncio.run(main())
    finally:
        scheduler.close()
