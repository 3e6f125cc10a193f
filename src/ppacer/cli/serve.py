"""Commands that run ppacer: ``run`` (scheduler + executor), ``scheduler`` and ``executor``."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

import click

from ppacer.api.client import Client
from ppacer.cli.common import State, fail
from ppacer.cli.loader import LoadError, describe_load_error, load_registry
from ppacer.dag.dag import Registry
from ppacer.errors import PpacerError
from ppacer.executor.executor import Executor
from ppacer.local import LocalRunner
from ppacer.logconfig import configure_logging
from ppacer.redact import redact_url
from ppacer.settings import Settings

__all__ = ["SERVE_COMMANDS"]

pass_state = click.make_pass_decorator(State, ensure=True)


def _load(target: str) -> Registry:
    try:
        return load_registry(target)
    except (LoadError, PpacerError) as exc:
        fail(str(exc))
    except Exception as exc:
        fail(describe_load_error(target, exc))


def _dags(registry: Registry) -> str:
    ids = list(registry)
    shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
    return f"{len(ids)} DAG{'' if len(ids) == 1 else 's'} ({shown})"


def _logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)


def _server_options(fn: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--db", default=None, help="Scheduler DB: SQLite path or postgresql:// URL."
            ),
            click.option("--logs-db", default=None, help="Task logs DB: path or URL."),
            click.option("--host", default=None, help="Address to listen on [127.0.0.1]."),
            click.option("--port", default=None, type=int, help="Port to listen on [9321]."),
            click.option("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR."),
            click.option(
                "--log-format",
                default=None,
                type=click.Choice(["text", "json"]),
                help="Log lines as text or JSON.",
            ),
            click.option(
                "--no-upgrade",
                is_flag=True,
                default=None,
                help="Refuse an older database schema instead of upgrading it on start.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _serve(settings: Settings, registry: Registry, *, with_executor: bool) -> None:
    config = settings.scheduler_config
    try:
        runner = LocalRunner(
            registry,
            settings.db,
            settings.logs_db,
            port=settings.port,
            host=settings.host,
            config=config,
            with_executor=False,
        )
    except OSError as exc:
        fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}")
    except PpacerError as exc:
        fail(str(exc))
    if with_executor:
        runner.executor = Executor(
            Client(runner.url, token=config.api_token),
            registry,
            logs_db=runner.scheduler.logs_engine,
            concurrency=settings.executor.concurrency,
            poll_wait_s=min(settings.executor.poll_wait_s, config.max_pop_wait_s),
            name=settings.executor.name,
        )
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    base = f"http://{f'[{host}]' if ':' in host else host}:{runner.port}"
    what = "scheduler and executor" if with_executor else "scheduler"
    click.echo(f"ppacer {what}: {_dags(registry)}, database {redact_url(settings.db)}")
    click.echo(f"UI:       {base}/ui")
    click.echo(f"API docs: {base}/docs")
    click.echo("Stop with Ctrl-C.")
    runner.serve_forever()


@click.command()
@click.argument("target")
@_server_options
@click.option("--concurrency", default=None, type=int, help="Tasks run at once [8].")
@pass_state
def run(
    state: State,
    target: str,
    db: str | None,
    logs_db: str | None,
    host: str | None,
    port: int | None,
    log_level: str | None,
    log_format: str | None,
    no_upgrade: bool | None,
    concurrency: int | None,
) -> None:
    """Run a scheduler and an executor in one process for the DAGs in TARGET.

    TARGET is a .py file or a module defining a ppacer.Registry (or Dags) at
    top level. Uses SQLite files in the current directory unless told
    otherwise; prints the web UI's URL; Ctrl-C stops cleanly.

    Example: ppacer run ppacer.examples.hello --port 9321
    """
    settings = state.settings(
        db=db,
        logs_db=logs_db,
        host=host,
        port=port,
        log_level=log_level,
        log_format=log_format,
        executor__concurrency=concurrency,
        scheduler__upgrade_db=False if no_upgrade else None,
    )
    _logging(settings)
    _serve(settings, _load(target), with_executor=True)


@click.command()
@click.argument("target")
@_server_options
@pass_state
def scheduler(
    state: State,
    target: str,
    db: str | None,
    logs_db: str | None,
    host: str | None,
    port: int | None,
    log_level: str | None,
    log_format: str | None,
    no_upgrade: bool | None,
) -> None:
    """Run only the scheduler (its API and UI) for the DAGs in TARGET.

    Executors (`ppacer executor`) connect to it over HTTP, from any host.
    --db postgresql://user@host/dbname keeps its state in PostgreSQL.

    Example: ppacer scheduler ppacer.examples.hello --host 0.0.0.0
    """
    settings = state.settings(
        db=db,
        logs_db=logs_db,
        host=host,
        port=port,
        log_level=log_level,
        log_format=log_format,
        scheduler__upgrade_db=False if no_upgrade else None,
    )
    _logging(settings)
    _serve(settings, _load(target), with_executor=False)


@click.command()
@click.argument("target")
@click.option("--url", default=None, help="Scheduler URL (default: PPACER_URL or settings).")
@click.option("--token", default=None, help="API token (default: PPACER_TOKEN or settings).")
@click.option("--name", default=None, help="Executor name [host-pid].")
@click.option("--concurrency", default=None, type=int, help="Tasks run at once [8].")
@click.option("--logs-db", default=None, help="Task logs DB: path or URL.")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR.")
@click.option("--log-format", default=None, type=click.Choice(["text", "json"]))
@pass_state
def executor(
    state: State,
    target: str,
    url: str | None,
    token: str | None,
    name: str | None,
    concurrency: int | None,
    logs_db: str | None,
    log_level: str | None,
    log_format: str | None,
) -> None:
    """Run an executor for the DAGs in TARGET against a running scheduler.

    It needs the same DAG code as the scheduler. Ctrl-C (or SIGTERM) stops
    polling and waits for the running tasks.

    Example: ppacer executor ppacer.examples.hello --url http://127.0.0.1:9321 --concurrency 16
    """
    settings = state.settings(
        url=url,
        token=token,
        executor__name=name,
        executor__concurrency=concurrency,
        logs_db=logs_db,
        log_level=log_level,
        log_format=log_format,
    )
    _logging(settings)
    registry = _load(target)
    worker = Executor(
        Client(settings.scheduler_url, token=settings.token),
        registry,
        logs_db=settings.logs_db,
        concurrency=settings.executor.concurrency,
        poll_wait_s=settings.executor.poll_wait_s,
        name=settings.executor.name,
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            sys.exit(130)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    click.echo(
        f"ppacer executor {worker.name}: {_dags(registry)}, scheduler {settings.scheduler_url}"
    )
    worker.start()
    stop.wait()
    click.echo("stopping: waiting for running tasks")
    worker.stop()


SERVE_COMMANDS = [run, scheduler, executor]
