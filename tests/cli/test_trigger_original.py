"""``ppacer trigger`` against the original Go scheduler, which answers a trigger with an empty 200.

Needs the original built (``PPACER_ORIGINAL_BIN``, a directory with
``ppacer-bench``; see ``tests/e2e/test_original_clients.py``); skips otherwise.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.conftest import query, wait_for

# Read at import: the command-line tests' fixture clears PPACER_* variables for each test.
_ORIGINAL_BIN = os.environ.get("PPACER_ORIGINAL_BIN")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return httpx2.get(f"{url}/state", timeout=5).status_code == 200
    except httpx2.HTTPError:
        return False


@pytest.fixture
def original_scheduler(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The original's scheduler (its compatibility DAGs, SQLite in a directory): URL, DB."""
    given = _ORIGINAL_BIN
    if not given:
        pytest.skip("needs the original's binaries: set PPACER_ORIGINAL_BIN")
    port = _free_port()
    data = tmp_path / "original"
    data.mkdir()
    bench = str(Path(given) / "ppacer-bench")
    proc = subprocess.Popen(
        [bench, "-role", "scheduler", "-dir", str(data), "-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), 30, "the original scheduler")
        yield url, data / "scheduler.db"
    finally:
        proc.terminate()
        proc.wait(10)


def test_trigger_takes_the_originals_empty_answer_once_and_says_it_cannot_wait(
    original_scheduler, ppacer_cli
):
    url, db = original_scheduler
    result = ppacer_cli("trigger", "compat_chain", "--url", url)
    assert result.exit_code == 0, result.output
    assert result.output == "run of compat_chain triggered (the scheduler did not say its run id)\n"
    as_json = ppacer_cli("trigger", "compat_chain", "--url", url, "--json")
    assert json.loads(as_json.output) == {"runId": None, "dagId": "compat_chain", "execTs": None}
    waited = ppacer_cli("trigger", "compat_chain", "--url", url, "--wait")
    assert waited.exit_code == 1
    assert "--wait: the scheduler did not say which run it made" in waited.stderr
    # One run per command: nothing was sent twice.
    assert len(query(db, "SELECT RunId FROM dagruns WHERE DagId = 'compat_chain'")) == 3
