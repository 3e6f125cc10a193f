"""The ``ppacer`` command line: run DAGs, and talk to a running scheduler.

Commands (``ppacer COMMAND --help`` for each):

- run it: ``run`` (scheduler + executor), ``scheduler``, ``executor``;
- talk to it: ``dags list|show|pause|unpause``, ``runs list|show``, ``trigger``,
  ``restart``, ``logs``, ``backfill``, ``schedule``, ``executors``;
- locally: ``db upgrade|check``, ``validate``, ``config show``.

Exit codes: 0 ok, 1 failure (the scheduler refused, a run failed, invalid
DAGs), 2 bad usage (including bad settings). Settings come from defaults <
``ppacer.toml`` < ``PPACER_*`` environment variables < flags (see
:mod:`ppacer.settings`).
"""

from __future__ import annotations

import click

from ppacer.cli.admin import ADMIN_COMMANDS
from ppacer.cli.common import State
from ppacer.cli.loader import load_registry
from ppacer.cli.remote import REMOTE_COMMANDS
from ppacer.cli.serve import SERVE_COMMANDS

__all__ = ["load_registry", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_file",
    default=None,
    metavar="FILE",
    help="Settings file (default: PPACER_CONFIG, else ./ppacer.toml if it exists).",
)
@click.version_option(package_name="ppacer")
@click.pass_context
def main(ctx: click.Context, config_file: str | None) -> None:
    """ppacer: DAGs of Python tasks on a schedule.

    \b
    Quick start:
      ppacer validate dags.py      check your DAGs
      ppacer run dags.py           scheduler + executor, UI at http://127.0.0.1:9321/ui
      ppacer trigger hello         start a run (in another terminal)
      ppacer runs list             see it
      ppacer logs 1 say_hello      read a task's log
    """
    ctx.obj = State(config_file=config_file)


for _command in [*SERVE_COMMANDS, *REMOTE_COMMANDS, *ADMIN_COMMANDS]:
    main.add_command(_command)
