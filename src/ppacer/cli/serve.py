"""Commands that run ppacer: ``run`` (scheduler + executor), ``scheduler`` and ``executor``."""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click

from ppacer.api.client import Client
from ppacer.cli.common import EXIT_USAGE, State, fail, resolve_url
from ppacer.cli.loader import LoadError, describe_load_error, load_registry
from ppacer.cli.reload_flag import reload_option, watch_executor, watch_runner
from ppacer.cli.reloader import watched_dir
from ppacer.dag.dag import Registry
from ppacer.db.engine import database_url
from ppacer.errors import InvalidInputError, PpacerError
from ppacer.executor.executor import Executor
from ppacer.local import LocalRunner
from ppacer.logconfig import configure_logging
from ppacer.redact import redact_url
from ppacer.settings import CONFIG_ENV, Setting, Settings, load_settings

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
            click.option(
                "--port",
                default=None,
                type=click.IntRange(0, 65535),
                help="Port to listen on [9321]; 0: any free port.",
            ),
            click.option(
                "--token",
                default=None,
                help="API token every request must bring (default: PPACER_TOKEN or `token` "
                "in ppacer.toml; none: no token asked).",
            ),
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


# Ports tried after a busy one, for the hint.
_PORTS_TRIED = 20
# Connections waiting to be accepted (uvicorn's own default).
_BACKLOG = 2048


def _bind_problem(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be listened on now (None: it can), as the scheduler binds it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


def _listen_error(host: str, port: int, exc: OSError) -> str:
    """The one line for a port that cannot be listened on, with the flag that fixes it."""
    where = f"cannot listen on {host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        free = next(
            (
                p
                for p in range(port + 1, min(port + 1 + _PORTS_TRIED, 65536))
                if _bind_problem(host, p) is None
            ),
            0,
        )
        return (
            f"{where}: the port is in use (another `ppacer run` or `ppacer scheduler`?); "
            f"stop that, or start on another port: --port {free}"
        )
    if exc.errno == errno.EACCES:
        return f"{where}: permission denied (ports below 1024 need root); use e.g. --port 9321"
    return f"{where}: {exc.strerror or exc}; check --host"


def _check_port(settings: Settings) -> None:
    """Exit with the --port hint if the port is taken, before a DAG is loaded or a file made."""
    if settings.port == 0:
        return
    problem = _bind_problem(settings.host, settings.port)
    if problem is not None:
        fail(_listen_error(settings.host, settings.port, problem))


def _elsewhere(state: State, settings: Settings, rows: list[Setting], base: str) -> str | None:
    """What another terminal must export to reach this scheduler; None if it finds it anyway.

    A command run elsewhere reads ppacer.toml but not this terminal's
    environment or flags. In this directory it also finds a scheduler on
    this SQLite database by itself (see ``resolve_url``).
    """
    env = {CONFIG_ENV: os.environ[CONFIG_ENV]} if CONFIG_ENV in os.environ else {}
    try:
        plain, plain_rows = load_settings(state.config_file, env=env)
    except PpacerError:
        return f"Other terminals: export PPACER_URL={base}"
    where = {row.key: row.source for row in rows}
    needs_token = bool(settings.token) and not where["token"].startswith(("file", "default"))
    exports = []
    if plain.scheduler_url != base:
        exports.append(f"PPACER_URL={base}")
    if needs_token:
        exports.append("PPACER_TOKEN=<the token given to this command>")
    if not exports:
        return None
    # Where a command finds a scheduler by itself (common.resolve_url).
    plain_where = {row.key: row.source for row in plain_rows}
    found_here = (
        "://" not in settings.db
        and plain.db == settings.db
        and all(plain_where[key] == "default" for key in ("url", "host", "port"))
        and not needs_token
    )
    prefix = "commands run in this directory find it; elsewhere: " if found_here else ""
    return f"Other terminals: {prefix}export {' '.join(exports)}"


def _serve(
    state: State,
    settings: Settings,
    rows: list[Setting],
    registry: Registry,
    *,
    with_executor: bool,
    reload: str | None = None,
) -> None:
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
        fail(_listen_error(settings.host, settings.port, exc))
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
    # Listening from now on: a client that reads the banner and connects at once
    # waits in the backlog until the server accepts, instead of being refused.
    runner.sock.listen(_BACKLOG)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    scheme = "https" if settings.tls_cert else "http"
    base = f"{scheme}://{f'[{host}]' if ':' in host else host}:{runner.port}"
    what = "scheduler and executor" if with_executor else "scheduler"
    click.echo(f"ppacer {what}: {_dags(registry)}, database {redact_url(settings.db)}")
    click.echo(f"UI:       {base}/ui")
    click.echo(f"API docs: {base}/docs")
    elsewhere = _elsewhere(state, settings, rows, base)
    if elsewhere is not None:
        click.echo(elsewhere)
    if reload is not None:
        click.echo(f"Reloading on changes in {watched_dir(reload)}")
    click.echo("Stop with Ctrl-C.")
    reloader = watch_runner(reload, runner) if reload is not None else None
    try:
        runner.serve_forever(announce=False)  # the banner above said where
    finally:
        if reloader is not None:
            reloader.stop()


@click.command()
@click.argument("target")
@_server_options
@reload_option
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
    token: str | None,
    reload: bool,
    concurrency: int | None,
) -> None:
    """Run a scheduler and an executor in one process for the DAGs in TARGET.

    TARGET is a .py file or a module defining a ppacer.Registry (or Dags) at
    top level. Uses SQLite files in the current directory unless told
    otherwise; prints the web UI's URL; Ctrl-C stops cleanly.

    Example: ppacer run ppacer.examples.hello --port 9321
    """
    settings, rows = state.settings_with_sources(
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
        token=token,
    )
    _check_port(settings)
    _logging(settings)
    _serve(
        state, settings, rows, _load(target), with_executor=True, reload=target if reload else None
    )


@click.command()
@click.argument("target")
@_server_options
@reload_option
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
    token: str | None,
    reload: bool,
) -> None:
    """Run only the scheduler (its API and UI) for the DAGs in TARGET.

    Executors (`ppacer executor`) connect to it over HTTP, from any host.
    --db postgresql://user@host/dbname keeps its state in PostgreSQL; then
    start it on several hosts: one leads, the others stand by and take over.

    Example: ppacer scheduler ppacer.examples.hello --host 0.0.0.0
    """
    settings, rows = state.settings_with_sources(
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
        token=token,
    )
    _check_port(settings)
    _logging(settings)
    _serve(
        state, settings, rows, _load(target), with_executor=False, reload=target if reload else None
    )


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
@reload_option
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
    reload: bool,
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
    if named_logs_db is not None:
        try:
            database_url(named_logs_db)  # a missing driver said now, with what to install
        except PpacerError as exc:
            fail(str(exc))
    scheduler_url = resolve_url(rows, settings)
    try:
        client = Client(scheduler_url, token=settings.token, ca_file=settings.ca_file)
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
        f"ppacer executor {worker.name}: {_dags(registry)}, scheduler {scheduler_url}, "
        f"queues {','.join(ex.queue_list)}{where}"
    )
    reloader = watch_executor(target, worker) if reload else None
    worker.start()
    worker.wait()
    if reloader is not None:
        reloader.stop()
    if worker.error is not None:
        # The one line saying what to fix is logged already.
        worker.stop(5.0)
        sys.exit(EXIT_USAGE)
    click.echo("stopping: waiting for running tasks")
    worker.stop()


SERVE_COMMANDS = [run, scheduler, executor]
