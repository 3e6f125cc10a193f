"""Background ``ppacer`` processes for tests: output read by threads, waited for with deadlines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_for

__all__ = ["Lines", "Proc", "clean_env", "ppacer_command", "procs"]


def ppacer_command() -> list[str]:
    """The console script next to this interpreter (as installed), else ``python -m ppacer``."""
    script = Path(sys.executable).with_name("ppacer")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ppacer"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PPACER_")}
    env.update(extra)
    return env


class Lines:
    """A process's output lines, read by a thread so the test can wait for one with a deadline."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def wait_for_text(self, text: str, timeout_s: float = 30.0) -> str:
        """The first line containing ``text``, waiting up to ``timeout_s`` for it."""

        def find() -> str | None:
            with self._lock:
                return next((line for line in self.lines if text in line), None)

        return wait_for(find, timeout_s, f"a line with {text!r}")

    def wait_for(self, prefix: str, timeout_s: float = 30.0) -> str:
        def find() -> str | None:
            with self._lock:
                return next((line for line in self.lines if line.startswith(prefix)), None)

        return wait_for(find, timeout_s, f"a line starting with {prefix!r}")

    def all(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def join(self) -> None:
        self._thread.join(10)


class Proc:
    """A background ``ppacer`` process with its stdout and stderr lines."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            [*ppacer_command(), *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out = Lines(self.popen.stdout)
        self.err = Lines(self.popen.stderr)

    def url(self) -> str:
        return self.out.wait_for("UI:").split()[-1].removesuffix("/ui")

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            raise

    def close(self) -> None:
        """Kill the process if it still runs; close its pipes once read to the end."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)
        self.out.join()
        self.err.join()
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Processes a test starts (append them); killed and reaped at its end."""
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.close()
