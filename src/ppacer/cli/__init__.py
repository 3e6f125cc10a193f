"""The ``ppacer`` command line: run DAGs, and talk to a running scheduler.

Commands (``ppacer COMMAND --help`` for each):

- run it: ``run`` (scheduler + executor), ``scheduler``, ``executor``;
- talk to it: ``dags list|show|pause|unpause``, ``runs list|show``, ``trigger``,
  ``restart``, ``logs``, ``backfill``, ``schedule``, ``executors``;
- locally: ``db upgrade|check``, ``validate``, ``config show``.

Exit codes: 0 ok, 1 failure (the scheduler refused, a run failed, invalid
DAGs), 2 bad usage (including bad settings). Settings come from defaults <
``ppacer.toml`` < ``PPACER_*`` environment variables < flags (see
:mod:`ppacer.settings`). An unexpected exception ends a command with a
one-line ``error: ...`` and exit code 1; ``--debug`` (or ``PPACER_DEBUG=1``)
lets its traceback through instead.
"""

from __future__ import annotations

import errno
import importlib
from collections.abc import Sequence
from typing import Any

import click

from ppacer.cli.common import EXIT_FAILURE, State, describe_error
from ppacer.cli.loader import load_registry

__all__ = ["COMMAND_MODULES", "load_command", "load_registry", "main"]

#: Each command's module in ``ppacer.cli``, imported when the command is run (``ppacer
#: --help`` imports them all): ``ppacer run`` loads neither the client commands' table
#: printing (Rich) nor the database administration (Alembic).
COMMAND_MODULES = {
    "run": "serve",
    "scheduler": "serve",
    "executor": "serve",
    "dags": "dags",
    "schedule": "dags",
    "executors": "dags",
    "runs": "runs",
    "trigger": "runs",
    "restart": "runs",
    "logs": "runs",
    "backfill": "runs",
    "db": "admin",
    "validate": "admin",
    "config": "admin",
    "prune": "prune",
}


def load_command(args: Sequence[str]) -> None:
    """Import the modules of the command ``args`` name (``ppacer [OPTIONS] COMMAND ...``),
    if they name one, as running it would."""
    rest = iter(args)
    for arg in rest:
        if arg == "--config":
            next(rest, None)  # its value
        elif not arg.startswith("-"):
            if arg in COMMAND_MODULES:
                importlib.import_module(f"ppacer.cli.{COMMAND_MODULES[arg]}")
            return


class _Commands(dict[str, click.Command]):
    """``main.commands``: each command's module imported on first access to it."""

    def __missing__(self, name: str) -> click.Command:
        module = COMMAND_MODULES.get(name)
        if module is None:
            raise KeyError(name)
        for value in vars(importlib.import_module(f"ppacer.cli.{module}")).values():
            if isinstance(value, click.Command) and value.name in COMMAND_MODULES:
                self.setdefault(value.name, value)
        return dict.__getitem__(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in COMMAND_MODULES else default

    def __contains__(self, name: object) -> bool:
        return name in COMMAND_MODULES

    def _all(self) -> dict[str, click.Command]:
        return {name: self[name] for name in COMMAND_MODULES}

    def __iter__(self) -> Any:
        return iter(self._all())

    def __len__(self) -> int:
        return len(COMMAND_MODULES)

    def keys(self) -> Any:
        return self._all().keys()

    def values(self) -> Any:
        return self._all().values()

    def items(self) -> Any:
        return self._all().items()


class _Main(click.Group):
    """The ``ppacer`` group: commands load on first use; no command ends in a traceback
    unless ``--debug`` asks for it."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, sorted (as click lists them), without importing them."""
        return sorted(COMMAND_MODULES)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; an unexpected exception becomes ``error: ...`` and exit code 1."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own: usage errors (2), exits, Ctrl-C
        except Exception as exc:
            if ctx.params.get("debug") or (isinstance(exc, OSError) and exc.errno == errno.EPIPE):
                raise  # click quietly ends on a closed pipe (`ppacer ... | head`)
            click.echo(f"error: {describe_error(exc)} (--debug shows the traceback)", err=True)
            ctx.exit(EXIT_FAILURE)


@click.group(
    cls=_Main,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--debug",
    is_flag=True,
    envvar="PPACER_DEBUG",
    help="Show the traceback of an unexpected error (also PPACER_DEBUG=1).",
)
@click.option(
    "--config",
    "config_file",
    default=None,
    metavar="FILE",
    help="Settings file (default: PPACER_CONFIG, else ./ppacer.toml if it exists).",
)
@click.version_option(package_name="ppacer")
@click.pass_context
def main(ctx: click.Context, debug: bool, config_file: str | None) -> None:
    """ppacer: DAGs of Python tasks on a schedule.

    \b
    Quick start, with the example DAG shipped with ppacer (your own: a .py file or module):
      ppacer validate ppacer.examples.hello   check the DAGs
      ppacer run ppacer.examples.hello        scheduler + executor, UI at http://127.0.0.1:9321/ui
      ppacer trigger hello --wait             start a run, wait for it (in another terminal)
      ppacer runs list                        see it
      ppacer logs 1 greet                     read a task's log
    """
    ctx.obj = State(config_file=config_file)


main.commands = _Commands()
