"""What the commands share: settings from the layers, the client, output and exit codes.

Exit codes: 0 ok; 1 the scheduler refused or something failed (a message on
stderr); 2 bad usage, including bad settings (click's own convention).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from ppacer.api.client import Client
from ppacer.api.strictjson import DEPTH, NON_FINITE, SURROGATE, SYNTAX, JsonInputError, loads_strict
from ppacer.errors import PpacerError, ProtocolError
from ppacer.settings import Setting, Settings, SettingsError, load_settings
from ppacer.timeutils import parse_ts

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "CLI_ACTOR",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "RUN_COLUMNS",
    "State",
    "client_options",
    "connect",
    "console",
    "describe_error",
    "echo_json",
    "fail",
    "local_scheduler_url",
    "parse_json_object",
    "parse_time",
    "print_table",
    "resolve_url",
    "run_row",
    "short_ts",
]

EXIT_FAILURE = 1
# Width of tables when stdout is not a terminal, in characters.
_PIPE_WIDTH = 160
EXIT_USAGE = 2
#: Who the scheduler records as having done what a command asked (a trigger, a backfill).
CLI_ACTOR = "cli"

_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass
class State:
    """The group's options, handed to every command (``click.pass_obj``)."""

    config_file: str | None = None

    def settings(self, **flags: Any) -> Settings:
        """Effective settings: defaults < file < env < ``flags`` (dotted keys, None = not given)."""
        return self.settings_with_sources(**flags)[0]

    def settings_with_sources(self, **flags: Any) -> tuple[Settings, list[Setting]]:
        """The settings and, per key, the value's source; bad settings exit with code 2."""
        dotted = {key.replace("__", "."): value for key, value in flags.items()}
        try:
            return load_settings(self.config_file, flags=dotted)
        except SettingsError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def describe_error(exc: BaseException) -> str:
    """``Type: message`` on one line; a database error by its driver's error."""
    # SQLAlchemy wraps the driver's error (``orig``) in a message of several
    # lines ending with a link; the driver's own says what went wrong.
    orig = getattr(exc, "orig", None)
    if isinstance(orig, BaseException):
        exc = orig
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def console() -> Console:
    """A console on the current stdout (made per command, so test runners capture it).

    Rich is imported here, by the commands that print tables: ``ppacer run`` never loads it.
    """
    from rich.console import Console

    out = Console(file=sys.stdout, highlight=False, soft_wrap=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        # Piped or captured: do not wrap tables at 80 columns.
        out = Console(file=sys.stdout, highlight=False, soft_wrap=False, width=_PIPE_WIDTH)
    return out


def echo_json(data: Any) -> None:
    """Print ``data`` (JSON data or the client's answers) as one JSON document."""
    click.echo(json.dumps(data, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    to_json = getattr(value, "to_json", None)
    return to_json() if callable(to_json) else str(value)


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None
) -> None:
    """Print a table (empty cells for None)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console().print(table)


def short_ts(value: str | None) -> str:
    """A stored timestamp shortened for tables: ``2024-03-11 12:00:00.123``."""
    if not value:
        return ""
    try:
        return parse_ts(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    except ValueError:
        return value


def parse_time(value: str | None, option: str) -> datetime | None:
    """A user-given time: ISO 8601 with its zone (seconds optional), or the stored form.

    ``2024-03-11T12:00Z``, ``2024-03-11 13:00+01:00`` and ppacer's stored
    ``2024-03-11T12:00:00.000000UTC+00:00`` are all the same instant. A time
    without a zone is a usage error saying so, with the same time in UTC as
    the hint: ppacer never guesses a zone.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            return parse_ts(text)  # the stored form, and the original's
        except ValueError:
            raise click.BadParameter(
                f"{value!r} is not a time: give an ISO 8601 time with its zone, "
                "e.g. 2024-03-11T12:00Z (UTC) or 2024-03-11T13:00+01:00",
                param_hint=option,
            ) from None
    if parsed.tzinfo is None:
        shown = text if "T" in text or " " in text else f"{text}T00:00"
        raise click.BadParameter(
            f"{value!r} has no time zone (ppacer never guesses one): "
            f"add it, e.g. {shown}Z for UTC or {shown}+01:00",
            param_hint=option,
        )
    return parsed.astimezone(UTC)


def parse_json_object(value: str | None, option: str) -> dict[str, Any] | None:
    """A user-given JSON object (None if not given or empty); usage error naming ``option``.

    Parsed by the API's own strict parser: JSON has no NaN or Infinity, nesting
    is bounded, and text that is not valid Unicode is refused, rather than
    failing later.
    """
    if not value:
        return None
    try:
        parsed = loads_strict(value)
    except JsonInputError as exc:
        raise click.BadParameter(_JSON_PROBLEMS[exc.kind](exc), param_hint=option) from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object", param_hint=option)
    return parsed


_JSON_PROBLEMS: dict[str, Callable[[JsonInputError], str]] = {
    SYNTAX: lambda exc: f"not JSON: {exc.problem}",
    NON_FINITE: lambda exc: exc.problem,
    DEPTH: lambda exc: "not JSON: nested too deeply",
    SURROGATE: lambda exc: "not valid Unicode (a lone surrogate such as \\ud800)",
}


def client_options(fn: _F) -> _F:
    """``--url``, ``--token`` and ``--json`` for commands talking to a running scheduler."""
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)
    fn = click.option(
        "--token",
        default=None,
        help="API token (default: PPACER_TOKEN or `token` in ppacer.toml).",
    )(fn)
    return click.option(
        "--url",
        default=None,
        help="Scheduler URL; several, comma-separated, for a standby set-up (default: "
        "PPACER_URL, `url` in ppacer.toml, or http://HOST:PORT).",
    )(fn)


# What a scheduler on SQLite writes in ``<db>.lock`` while it runs (scheduler/leadership.py).
_LOCK_TEXT = re.compile(r"pid (\d+) on (\S+) since \S+, (https?://\S+)")


def local_scheduler_url(db: str) -> str | None:
    """The URL of the scheduler running on the SQLite file ``db`` on this host, if one runs.

    A scheduler holds ``<db>.lock`` while it runs and writes there its pid,
    host and URL; a file left by one that stopped names a process that is gone.
    """
    if "://" in db or db == ":memory:":
        return None
    try:
        text = Path(f"{db}.lock").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    match = _LOCK_TEXT.fullmatch(text)
    if match is None or match.group(2) != socket.gethostname():
        return None
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return match.group(3)


def resolve_url(rows: Sequence[Setting], settings: Settings) -> str:
    """Where a command finds the scheduler.

    ``url`` when set anywhere (flag, env, file), or ``host``/``port`` when
    set; else the scheduler running on this directory's database (so
    `ppacer run --port N` is found from another terminal in the same
    directory), else the default ``http://127.0.0.1:9321``.
    """
    where = {row.key: row.source for row in rows}
    if all(where[key] == "default" for key in ("url", "host", "port")):
        found = local_scheduler_url(settings.db)
        if found is not None:
            return found
    return settings.scheduler_url


@contextmanager
def connect(state: State, url: str | None, token: str | None) -> Iterator[Client]:
    """A client of the scheduler, acting as :data:`CLI_ACTOR`; refusals exit with code 1.

    An answer that is not a ppacer scheduler's is one line too, unless
    ``--debug`` asks for its traceback.
    """
    settings, rows = state.settings_with_sources(url=url, token=token)
    try:
        with Client(
            resolve_url(rows, settings),
            token=settings.token,
            ca_file=settings.ca_file,
            actor=CLI_ACTOR,
        ) as client:
            yield client
    except PpacerError as exc:
        if isinstance(exc, ProtocolError) and click.get_current_context().find_root().params.get(
            "debug"
        ):
            raise
        fail(str(exc))


def fetch_all(page: Callable[[int, int], Mapping[str, Any]], limit: int = 500) -> list[Any]:
    """Every item of a paginated list endpoint."""
    items: list[Any] = []
    while True:
        answer = page(limit, len(items))
        items.extend(answer["items"])
        if not answer["items"] or len(items) >= answer["total"]:
            return items


def run_row(run: Mapping[str, Any]) -> list[Any]:
    """A run as a row of :data:`RUN_COLUMNS`."""
    return [
        run["runId"],
        run["dagId"],
        short_ts(run["execTs"]),
        run["status"],
        short_ts(run["insertTs"]),
        short_ts(run["statusUpdateTs"]),
    ]


#: The columns of a table of runs.
RUN_COLUMNS = ("run", "DAG", "exec time (UTC)", "status", "created", "updated")
