"""The CLI imports a command's module when the command runs.

``ppacer run`` is the process that stays up: it must not carry the client
commands' table printing (Rich) or the database administration (Alembic, on a
current database) in its memory. ``ppacer --help`` and ``main.commands`` still
see every command.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import click

from ppacer.cli import COMMAND_MODULES, main


def test_every_command_of_every_module_is_listed_once() -> None:
    found: dict[str, str] = {}
    for module in sorted(set(COMMAND_MODULES.values())):
        for value in vars(importlib.import_module(f"ppacer.cli.{module}")).values():
            command = value if isinstance(value, click.Command) else None
            if command is not None and command.name in COMMAND_MODULES:
                found.setdefault(str(command.name), module)
    assert found == COMMAND_MODULES
    assert sorted(main.commands) == sorted(COMMAND_MODULES)
    assert {name: command.name for name, command in main.commands.items()} == {
        name: name for name in COMMAND_MODULES
    }
    assert main.commands.get("nope") is None and "nope" not in main.commands


def _python(code: str) -> str:
    """Run ``code`` in a fresh interpreter; its last line on stderr."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stderr.strip().splitlines()[-1]


def _loaded(names: tuple[str, ...]) -> str:
    return f"print(json.dumps({{n: n in sys.modules for n in {names!r}}}), file=sys.stderr)\n"


def _modules_after(argv: list[str]) -> dict[str, bool]:
    names = ("rich", "alembic", "ppacer.cli.admin", "ppacer.cli.runs", "ppacer.cli.serve")
    code = "import json, sys\nfrom ppacer.cli import main\n"
    code += f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n" + _loaded(names)
    return dict(json.loads(_python(code)))


def test_ppacer_run_loads_only_its_own_command() -> None:
    loaded = _modules_after(["run", "--help"])
    assert loaded == {
        "rich": False,
        "alembic": False,
        "ppacer.cli.admin": False,
        "ppacer.cli.runs": False,
        "ppacer.cli.serve": True,
    }


def test_the_help_lists_every_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ppacer", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    listed = done.stdout.split("Commands:", 1)[1].split()
    assert all(name in listed for name in COMMAND_MODULES)
    assert _modules_after(["runs", "--help"])["rich"] is False  # help prints no table


def _loaded_before_running(argv: list[str]) -> dict[str, bool]:
    names = ("ppacer.cli.admin", "ppacer.cli.runs", "ppacer.cli.serve")
    code = f"import json, sys\nfrom ppacer.cli import load_command\nload_command({argv!r})\n"
    return dict(json.loads(_python(code + _loaded(names))))


def test_the_entry_point_loads_the_command_it_is_given_before_running_it() -> None:
    # `ppacer` loads the command's modules up front (with the collector off): the
    # command named after the global options, and only that one.
    serve_only = {"ppacer.cli.admin": False, "ppacer.cli.runs": False, "ppacer.cli.serve": True}
    assert _loaded_before_running(["run", "ppacer.examples.hello"]) == serve_only
    assert _loaded_before_running(["--config", "runs", "--debug", "run"]) == serve_only
    nothing = dict.fromkeys(serve_only, False)
    assert _loaded_before_running(["--debug", "nope", "run"]) == nothing
    assert _loaded_before_running(["--help"]) == nothing


def test_the_entry_point_runs_the_command_with_the_collector_on() -> None:
    code = (
        "import gc, sys\n"
        "import ppacer.cli\n"
        "ppacer.cli.main = lambda: print(\n"
        "    gc.isenabled(), gc.get_freeze_count() > 10_000, file=sys.stderr\n"
        ")\n"
        "sys.argv = ['ppacer', 'run', 'ppacer.examples.hello']\n"
        "from ppacer.__main__ import run\n"
        "run()\n"
    )
    # On while the command runs; what loading it made is left out of the collector's passes.
    assert _python(code).split() == ["True", "True"]
