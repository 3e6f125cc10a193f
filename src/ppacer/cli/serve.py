"""Commands that run ppacer: ``run`` (scheduler + executor), ``scheduler`` and ``executor``."""

from __future__ import annotations

import dataclasses
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click

from ppacer.api.client import Client
from ppacer.cli.common import EXIT_USAGE, State, fail
from ppacer.cli.loader import LoadError, describe_load_error, load_registry
from ppacer.dag.dag import Registry
from ppacer.errors import InvalidInputError, PpacerError
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
            click.option(
                "--tls-cert",
                default=None,
                help="Serve HTTPS with this PEM certificate (and chain); needs --tls-key.",
            ),
            click.option("--tls-key", default=None, help="PEM private key of --tls-cert."),
            click.option(
                "--advertise-url",
                default=None,
                help="This scheduler's URL as other hosts reach it; standbys forward calls to "
                "the leader's [http://HOST:PORT; for 0.0.0.0 this host's name].",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _serve(settings: Settings, registry: Registry, *, with_executor: bool) -> None:
    config = settings.scheduler_config
    if with_executor and config.recovery_grace_s is None:
        # Attempts left RUNNING by the executor of this command, which died with it.
        config = dataclasses.replace(config, recovery_grace_s=0.0)
    try:
        runner = LocalRunner(
            registry,
            settings.db,
            settings.logs_db,
            port=settings.port,
            host=settings.host,
            config=config,
            with_executor=False,
            tls_cert=settings.tls_cert,
            tls_key=settings.tls_key,
        )
    except OSError as exc:
        fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}")
    except InvalidInputError as exc:
        fail(str(exc), EXIT_USAGE)
    except PpacerError as exc:
        fail(str(exc))
    if with_executor:
        runner.executor = Executor(
            runner.new_client(),
            registry,
            log_shipping=settings.executor.log_shipping,
            concurrency=settings.executor.concurrency,
            poll_wait_s=min(settings.executor.poll_wait_s, config.max_pop_wait_s),
            name=settings.executor.name,
            queues=settings.executor.queue_list,
            labels=settings.executor.label_map,
        )
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    scheme = "https" if settings.tls_cert else "http"
    base = f"{scheme}://{f'[{host}]' if ':' in host else host}:{runner.port}"
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
    tls_cert: str | None,
    tls_key: str | None,
    advertise_url: str | None,
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
        tls_cert=tls_cert,
        tls_key=tls_key,
        scheduler__advertise_url=advertise_url,
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
    tls_cert: str | None,
    tls_key: str | None,
    advertise_url: str | None,
) -> None:
    """Run only the scheduler (its API and UI) for the DAGs in TARGET.

    Executors (`ppacer executor`) connect to it over HTTP, from any host.
    --db postgresql://user@host/dbname keeps its state in PostgreSQL; then
    start it on several hosts: one leads, the others stand by and take over.

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
        tls_cert=tls_cert,
        tls_key=tls_key,
        scheduler__advertise_url=advertise_url,
    )
    _logging(settings)
    _serve(settings, _load(target), with_executor=False)


@click.command()
@click.argument("target")
@click.option("--url", default=None, help="Scheduler URL (default: PPACER_URL or settings).")
@click.option("--token", default=None, help="API token (default: PPACER_TOKEN or settings).")
@click.option(
    "--ca-file", default=None, help="PEM file of the CA that signs an https:// scheduler's cert."
)
@click.option("--name", default=None, help="Executor name [host-pid].")
@click.option("--concurrency", default=None, type=int, help="Tasks run at once [8].")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    help="Queues served, comma-separated or repeated [default].",
)
@click.option(
    "--label", "labels", multiple=True, help="A label key=value shown by the scheduler; repeatable."
)
@click.option(
    "--dask", default=None, help="Run the tasks on the Dask cluster at this scheduler address."
)
@click.option(
    "--logs-db",
    default=None,
    help="Write task logs to this logs DB (path or URL) instead of shipping them to the scheduler.",
)
@click.option("--spool-dir", default=None, help="Where undelivered task logs spill to disk.")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR.")
@click.option("--log-format", default=None, type=click.Choice(["text", "json"]))
@pass_state
def executor(
    state: State,
    target: str,
    url: str | None,
    token: str | None,
    ca_file: str | None,
    name: str | None,
    concurrency: int | None,
    queues: tuple[str, ...],
    labels: tuple[str, ...],
    dask: str | None,
    logs_db: str | None,
    spool_dir: str | None,
    log_level: str | None,
    log_format: str | None,
) -> None:
    """Run an executor for the DAGs in TARGET against a running scheduler.

    It needs the same DAG code as the scheduler: it tells the scheduler the
    code version of every task it has, and is handed only those. Task logs are
    shipped to the scheduler (no database here). Ctrl-C (or SIGTERM) stops
    polling and waits for the running tasks. A wrong token, an incompatible
    scheduler or a URL that is not a ppacer scheduler exits with code 2.

    Example: ppacer executor ppacer.examples.hello --url http://127.0.0.1:9321 --concurrency 16
    """
    settings, rows = state.settings_with_sources(
        url=url,
        token=token,
        ca_file=ca_file,
        executor__name=name,
        executor__concurrency=concurrency,
        executor__queues=",".join(queues) if queues else None,
        executor__labels=",".join(labels) if labels else None,
        executor__dask=dask,
        executor__spool_dir=spool_dir,
        logs_db=logs_db,
        log_level=log_level,
        log_format=log_format,
    )
    _logging(settings)
    registry = _load(target)
    # A logs DB the user named (not the default, nor one derived from --db) is written to.
    source = next(r.source for r in rows if r.key == "logs_db")
    named_logs_db = settings.logs_db if source.startswith(("file", "env", "flag")) else None
    try:
        client = Client(settings.scheduler_url, token=settings.token, ca_file=settings.ca_file)
    except PpacerError as exc:
        fail(str(exc), EXIT_USAGE)
    ex = settings.executor
    is_file = target.endswith(".py") or Path(target).is_file()
    worker = Executor(
        client,
        registry,
        logs_db=named_logs_db,
        log_shipping=ex.log_shipping,
        concurrency=ex.concurrency,
        poll_wait_s=ex.poll_wait_s,
        name=ex.name,
        queues=ex.queue_list,
        labels=ex.label_map,
        dask=ex.dask,
        # A DAG file given by path is sent to the workers (a module must be installed there).
        dask_upload=(target,) if ex.dask and is_file else (),
    )
    stopping = False

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            sys.exit(130)
        stopping = True
        worker.request_stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    where = f", Dask {ex.dask}" if ex.dask else ""
    click.echo(
        f"ppacer executor {worker.name}: {_dags(registry)}, scheduler {settings.scheduler_url}, "
        f"queues {','.join(ex.queue_list)}{where}"
    )
    worker.start()
    worker.wait()
    if worker.error is not None:
        # The one line saying what to fix is logged already.
        worker.stop(5.0)
        sys.exit(EXIT_USAGE)
    click.echo("stopping: waiting for running tasks")
    worker.stop()


SERVE_COMMANDS = [run, scheduler, executor]
