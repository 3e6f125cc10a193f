"""A first-in first-out queue of log records: in memory up to a bound, then in a file.

The log shipper keeps the records it has not delivered here. While the
scheduler is reachable the queue stays short and lives in memory; during an
outage a task may log far more than memory should hold, so past the bound the
records go to a file of JSON lines in a spool directory, and come back out of
it in order. Order holds across the two: once records are spooled, new ones
are spooled too until the file has been read to its end.

Not thread-safe: the shipper calls it under its own lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections import deque
from typing import IO, Any

from ppacer.api.models import LogRecord

__all__ = ["SpoolQueue", "record_from_json"]


def record_from_json(data: dict[str, Any]) -> LogRecord:
    """The record of :meth:`LogRecord.to_json`'s wire form."""
    return LogRecord(
        data["dagId"],
        data["execTs"],
        data["taskId"],
        data["retry"],
        data["seq"],
        data["insertTs"],
        data["level"],
        data["message"],
        data["attributes"],
    )


class SpoolQueue:
    """Records in order: at most ``max_records`` (and ``max_chars`` of text) in memory.

    Past either bound, records are appended to a file in ``spool_dir`` (None:
    a temporary directory made on first use, removed by :meth:`close`).
    """

    def __init__(self, *, max_records: int, max_chars: int, spool_dir: str | None = None) -> None:
        if max_records < 1 or max_chars < 1:
            raise ValueError("SpoolQueue needs max_records >= 1 and max_chars >= 1")
        self.max_records = max_records
        self.max_chars = max_chars
        self._spool_dir = spool_dir
        self._made_dir: str | None = None
        self._memory: deque[LogRecord] = deque()
        self._memory_chars = 0
        # The spool file while records are in it: written at its end, read from _read_at.
        self._path: str | None = None
        self._writer: IO[str] | None = None
        self._reader: IO[str] | None = None
        self._spooled = 0
        #: Records that ever went to the file (for tests and the executor's log line).
        self.spooled_total = 0

    def __len__(self) -> int:
        return len(self._memory) + self._spooled

    @property
    def is_spooling(self) -> bool:
        """True while records wait in the file."""
        return self._spooled > 0

    @property
    def path(self) -> str | None:
        """The spool file, while there is one."""
        return self._path

    def put(self, record: LogRecord) -> None:
        """Add ``record`` at the end (``OSError`` if it must be spooled and cannot be)."""
        size = len(record.message)
        full = (
            len(self._memory) >= self.max_records or self._memory_chars + size > self.max_chars
        ) and bool(self._memory)
        if self._spooled or full:
            self._spool(record)
            return
        self._memory.append(record)
        self._memory_chars += size

    def take(self, max_n: int, max_chars: int) -> list[LogRecord]:
        """Remove and return up to ``max_n`` records from the front (at least one if any),
        stopping before ``max_chars`` of message text."""
        out: list[LogRecord] = []
        chars = 0
        while self._memory and len(out) < max_n:
            size = len(self._memory[0].message)
            if out and chars + size > max_chars:
                return out
            record = self._memory.popleft()
            self._memory_chars -= size
            out.append(record)
            chars += size
        if self._memory or not self._spooled:
            return out
        assert self._writer is not None and self._reader is not None
        self._writer.flush()
        while self._spooled and len(out) < max_n and (not out or chars < max_chars):
            line = self._reader.readline()
            if not line:  # pragma: no cover - the count says there is a line
                break
            record = record_from_json(json.loads(line))
            out.append(record)
            chars += len(record.message)
            self._spooled -= 1
        if not self._spooled:
            self._truncate()
        return out

    def close(self) -> None:
        """Drop what is queued; remove the spool file (and the directory made for it)."""
        self._memory.clear()
        self._memory_chars = 0
        self._spooled = 0
        self._truncate()
        if self._made_dir is not None:
            with contextlib.suppress(OSError):
                os.rmdir(self._made_dir)
            self._made_dir = None

    def _spool(self, record: LogRecord) -> None:
        if self._writer is None:
            self._open()
        assert self._writer is not None
        self._writer.write(json.dumps(record.to_json(), allow_nan=False) + "\n")
        self._spooled += 1
        self.spooled_total += 1

    def _open(self) -> None:
        directory = self._spool_dir
        if directory is None:
            if self._made_dir is None:
                self._made_dir = tempfile.mkdtemp(prefix="ppacer-logs-")
            directory = self._made_dir
        else:
            os.makedirs(directory, exist_ok=True)
        fd, self._path = tempfile.mkstemp(
            prefix=f"spool-{os.getpid()}-", suffix=".jsonl", dir=directory
        )
        self._writer = os.fdopen(fd, "w", encoding="utf-8")
        self._reader = open(self._path, encoding="utf-8")  # noqa: SIM115 - kept open while spooling

    def _truncate(self) -> None:
        """The file is read to its end: remove it (records go to memory again)."""
        for handle in (self._writer, self._reader):
            if handle is not None:
                with contextlib.suppress(OSError):
                    handle.close()
        self._writer = self._reader = None
        if self._path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._path)
            self._path = None
