"""Fixtures of the command-line tests: a clean environment and a runner of ``ppacer``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ppacer.cli import main


@pytest.fixture(autouse=True)
def clean_env(tmp_path, monkeypatch):
    """No ppacer.toml and no PPACER_* variables from the developer's shell."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("PPACER_"):
            monkeypatch.delenv(name)


@pytest.fixture
def ppacer_cli() -> Callable[..., Result]:
    """Invoke ``ppacer ARGS...`` through its click entry point; returns the result."""
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None, **kwargs: Any) -> Result:
        return runner.invoke(main, list(args), env=env, catch_exceptions=False, **kwargs)

    return invoke
