"""Databases in the first hour: PostgreSQL without its driver, and ``db check`` before any table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import clean_env, ppacer_command

# Loaded by Python at start-up from PYTHONPATH: psycopg cannot be imported, as if not installed.
_NO_PSYCOPG = """
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("psycopg", "psycopg_binary", "psycopg_c"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""
PG_URL = "postgresql://ppacer@127.0.0.1:5432/never_reached"
HINT = "pip install 'ppacer[postgres]'"


@pytest.fixture
def without_psycopg(tmp_path: Path) -> dict[str, str]:
    """An environment whose Python cannot import psycopg."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(_NO_PSYCOPG)
    path = os.pathsep.join(p for p in (str(shim), os.environ.get("PYTHONPATH")) if p)
    env = clean_env(PYTHONPATH=path)
    blocked = subprocess.run(
        [sys.executable, "-c", "import psycopg"], env=env, capture_output=True, text=True
    )
    assert "No module named 'psycopg'" in blocked.stderr  # the shim works
    return env


@pytest.mark.parametrize(
    "args",
    [
        ["run", "ppacer.examples.hello", "--db", PG_URL, "--port", "0"],
        ["scheduler", "ppacer.examples.hello", "--db", PG_URL, "--port", "0"],
        ["db", "upgrade", "--db", PG_URL],
        ["db", "check", "--db", PG_URL],
        ["executor", "ppacer.examples.hello", "--logs-db", PG_URL, "--url", "http://127.0.0.1:9"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_postgresql_without_psycopg_says_what_to_install(tmp_path, without_psycopg, args):
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        [*ppacer_command(), *args],
        cwd=work,
        env=without_psycopg,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.splitlines()  # one line, no traceback
    assert line.startswith("error: ")
    assert HINT in line and "psycopg" in line
    assert list(work.iterdir()) == []


def test_db_check_on_empty_databases_says_run_db_upgrade(tmp_path, ppacer_cli):
    (tmp_path / "scheduler.db").touch()
    (tmp_path / "logs.db").touch()
    result = ppacer_cli("db", "check")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: the scheduler DB and the logs DB have no tables yet: "
        "run ppacer db upgrade to create them\n"
    )
    # Missing files are the same advice, with the flags that name them.
    result = ppacer_cli("db", "check", "--db", "other.db")
    assert result.exit_code == 1
    assert "run ppacer db upgrade --db other.db to create them" in result.stderr
    assert not (tmp_path / "other.db").exists()
    # The command it names does it; then the check passes.
    assert ppacer_cli("db", "upgrade").exit_code == 0
    again = ppacer_cli("db", "check")
    assert again.exit_code == 0 and again.stderr == ""


def test_db_check_on_an_empty_postgresql_database(pg_url, ppacer_cli):
    result = ppacer_cli("db", "check", "--db", pg_url)
    assert result.exit_code == 1
    assert result.stderr.endswith(f"run ppacer db upgrade --db {pg_url} to create them\n")
