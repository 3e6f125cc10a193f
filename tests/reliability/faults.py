"""Helpers of the reliability tests: a small real file system, filling it, free ports,
the executions oracle (an O_APPEND file every task writes a line to), Prometheus text."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Set to run the longer variants of the reliability tests (more kill points, bigger runs).
LONG = os.environ.get("PPACER_RELIABILITY_LONG") == "1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``4m``) mounted on ``path`` for the block, then unmounted.

    Skips the test when it cannot be mounted (no root), except in CI (``CI=true``),
    where it must work.
    """
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        message = f"cannot mount a tmpfs on {path}: {mounted.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield path
    finally:
        # Lazy: files still open by a process being stopped do not keep it mounted.
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(directory: Path) -> Path:
    """Fill ``directory``'s file system to the last byte with one file; return it."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with open(filler, "ab", buffering=0) as out:
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    out.write(chunk[:size])
    return filler


class Executions:
    """The oracle of what really ran: one line per execution of a task, in a file.

    Tasks append ``exec_ts task_id retry pid`` with ``O_APPEND`` (whole lines from
    any process), before they do anything else.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[list[str]]:
        if not self.path.exists():
            return []
        return [line.split() for line in self.path.read_text().splitlines() if line]

    def per_task(self) -> Counter[tuple[str, str]]:
        """Executions by (exec_ts, task_id)."""
        return Counter((parts[0], parts[1]) for parts in self.lines())

    def reruns(self) -> int:
        """Executions beyond the first of each task."""
        return sum(n - 1 for n in self.per_task().values())


def append_line(path: str, line: str) -> None:
    """Append one whole line to ``path`` (``O_APPEND``: safe from any process)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def metric(text: str, name: str) -> float:
    """The value of an unlabelled metric in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name} in /metrics")
