"""Settings of the ``ppacer`` processes: one typed object from four layers.

Precedence, lowest first: defaults < a TOML file (``ppacer.toml``) < environment
variables < command-line flags. Every setting has a dotted key; the file uses
it as written (sections for the dots), the environment as ``PPACER_`` plus the
key in capitals with ``_`` for the dots::

    db = "scheduler.db"            # PPACER_DB
    port = 9321                    # PPACER_PORT
    [executor]
    concurrency = 8                # PPACER_EXECUTOR_CONCURRENCY
    [scheduler]
    timezone = "Europe/Warsaw"     # PPACER_SCHEDULER_TIMEZONE

The ``[scheduler]`` section is the scheduler's :class:`~ppacer.scheduler.config.Config`,
read field by field from its dataclass, so a field added there is a setting here
with no further code. Unknown keys (in the file, or ``PPACER_SCHEDULER_*`` /
``PPACER_EXECUTOR_*`` variables) and bad values are :class:`SettingsError`\\ s
naming the key and where it came from.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ppacer.errors import PpacerError
from ppacer.redact import mask_secret, redact_url
from ppacer.scheduler.config import DEFAULT_CONFIG, Config

if typing.TYPE_CHECKING:
    from ppacer.executor.logship import LogShipping

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_FILE",
    "ExecutorSettings",
    "Setting",
    "Settings",
    "SettingsError",
    "describe_settings",
    "load_settings",
    "mask_secret",
]

#: The file read when no other is named (in the current directory; optional).
DEFAULT_CONFIG_FILE = "ppacer.toml"
#: Environment variable naming the settings file (a file named this way must exist).
CONFIG_ENV = "PPACER_CONFIG"
_PREFIX = "PPACER_"
_LOG_FORMATS = ("text", "json")
# Flags not spelled as their key's last part.
_FLAGS = {"executor.queues": "--queue", "executor.labels": "--label"}
# Keys whose values are secrets: shown masked.
_SECRET_KEYS = {"token", "scheduler.api_token"}


class SettingsError(PpacerError, ValueError):
    """A setting is unknown or has a bad value; the message names the key and its source."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutorSettings:
    """How ``ppacer executor`` (and the executor of ``ppacer run``) works."""

    # Name shown in the scheduler's executor list and metrics (None: host-pid).
    name: str | None = None
    # Tasks run at once.
    concurrency: int = 8
    # Longest a long poll for work waits, in seconds (also how long a stop may
    # wait for the poll in flight).
    poll_wait_s: float = 5.0
    # Queues served: comma-separated names ("gpu,default"). A task names its
    # queue in TaskConfig.queue ("default" unless set).
    queues: str = "default"
    # Labels shown in the scheduler's executor list: comma-separated key=value
    # pairs ("zone=eu,gpu=a100").
    labels: str = ""
    # Address of a Dask scheduler to run the tasks on ("tcp://host:8786"; None:
    # run them in this process). Needs `pip install 'ppacer[dask]'`.
    dask: str | None = None
    # Task log records held in memory while the scheduler cannot take them, in
    # records; past it they are spooled to a file in spool_dir.
    log_buffer_records: int = 10_000
    # Directory of spooled task log records (None: a new temporary directory).
    spool_dir: str | None = None
    # Longest task log line shipped, in characters; a longer one is cut and ends
    # with a note saying how much was cut.
    max_log_line_chars: int = 65_536
    # Most task log lines shipped per attempt, in lines; one final line says how
    # many more were not shipped.
    max_log_lines: int = 100_000

    @property
    def queue_list(self) -> list[str]:
        """``queues`` as a list of names."""
        from ppacer.executor.registration import parse_queues

        return parse_queues(self.queues)

    @property
    def label_map(self) -> dict[str, str]:
        """``labels`` as a dict."""
        from ppacer.executor.registration import parse_labels

        return parse_labels(self.labels)

    @property
    def log_shipping(self) -> LogShipping:
        """How task logs are shipped (buffer, spool directory, caps)."""
        from ppacer.executor.logship import LogShipping

        return LogShipping(
            buffer_records=self.log_buffer_records,
            spool_dir=self.spool_dir,
            max_line_chars=self.max_log_line_chars,
            max_lines=self.max_log_lines,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the ``ppacer`` command line needs, typed, with one default each."""

    # Scheduler database: a SQLite file path or a postgresql:// URL.
    db: str = "scheduler.db"
    # Task logs database: a SQLite file path or a postgresql:// URL. Not set with a
    # PostgreSQL `db`: the same database (executors ship their logs to the scheduler).
    logs_db: str = "logs.db"
    # Address the scheduler's HTTP server binds to.
    host: str = "127.0.0.1"
    # Port of the scheduler's HTTP server (0: any free port).
    port: int = 9321
    # URL of a running scheduler for executors and remote commands (None: http://host:port).
    url: str | None = None
    # The API token: clients send it, and the scheduler requires it unless
    # scheduler.api_token says otherwise. A secret: masked by `ppacer config show`.
    token: str | None = None
    # Log level of the processes: DEBUG, INFO, WARNING, ERROR.
    log_level: str = "INFO"
    # "text" (one human line per record) or "json" (JSON lines with dag_id/run_id/task_id).
    log_format: str = "text"
    # PEM file of the certificate (with its chain) the scheduler serves HTTPS
    # with; None: plain HTTP. Needs tls_key.
    tls_cert: str | None = None
    # PEM file of tls_cert's private key.
    tls_key: str | None = None
    # PEM file of the CA(s) clients and executors trust for an https:// scheduler
    # (None: the system's CAs). For a private CA or a self-signed certificate.
    ca_file: str | None = None
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    scheduler: Config = DEFAULT_CONFIG

    @property
    def scheduler_url(self) -> str:
        """Where clients find the scheduler: ``url``, else ``http://host:port``."""
        if self.url:
            return self.url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def scheduler_config(self) -> Config:
        """The scheduler's Config, with ``token`` as its API token unless one is set there."""
        if self.scheduler.api_token is None and self.token:
            return dataclasses.replace(self.scheduler, api_token=self.token)
        return self.scheduler


@dataclass(frozen=True, slots=True)
class Setting:
    """One effective setting: its key, value and where the value came from."""

    key: str
    value: Any
    source: str
    is_secret: bool

    @property
    def shown(self) -> str:
        """The value as ``config show`` prints it (secrets masked)."""
        if self.value is None:
            return ""
        if self.is_secret:
            return mask_secret(str(self.value))
        if isinstance(self.value, str) and "://" in self.value:
            return redact_url(self.value)
        return str(self.value)


@dataclass(frozen=True, slots=True)
class _Key:
    path: tuple[str, ...]
    type: Any

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @property
    def env(self) -> str:
        return _PREFIX + "_".join(self.path).upper()


def _keys(cls: type[Any], prefix: tuple[str, ...] = ()) -> list[_Key]:
    """The settings of a dataclass, nested dataclasses as sections, in field order."""
    hints = typing.get_type_hints(cls)
    out: list[_Key] = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            out.extend(_keys(kind, (*prefix, f.name)))  # type: ignore[arg-type]
        else:
            out.append(_Key((*prefix, f.name), kind))
    return out


_KEYS = _keys(Settings)
_BY_NAME = {k.name: k for k in _KEYS}
_BY_ENV = {k.env: k for k in _KEYS}
_SECTIONS = {k.path[0] for k in _KEYS if len(k.path) > 1}


def _flatten(data: Mapping[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if name not in _SECTIONS:
                raise SettingsError(f"{where}: unknown section [{name}]")
            out.update(_flatten(value, where, name + "."))
        elif name not in _BY_NAME:
            raise SettingsError(f"{where}: unknown key {name!r}{_suggest(name)}")
        else:
            out[name] = value
    return out


def _suggest(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(_BY_NAME), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_args(kind: Any) -> tuple[Any, bool]:
    """The base type of an annotation and whether None is allowed."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), True
    return kind, False


def _coerce(key: _Key, value: Any, source: str) -> Any:
    """Check (file values) or parse (env and flag strings) one value to the key's type."""
    base, optional = _type_args(key.type)
    from_text = isinstance(value, str) and not source.startswith("file")
    where = f"{key.name} (from {source})"
    if value is None or (optional and from_text and value == ""):
        if optional:
            return None
        raise SettingsError(f"{where}: a value is required")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            if from_text and value.lower() in ("1", "true", "yes", "on"):
                return True
            if from_text and value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if base is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if from_text and re.fullmatch(r"[+-]?\d+", value.strip()):
                return int(value)
            raise ValueError("expected a whole number")
        if base is float:
            number: float | None = None
            if (isinstance(value, int | float) and not isinstance(value, bool)) or from_text:
                number = float(value)
            if number is None or not math.isfinite(number):
                raise ValueError("expected a (finite) number")
            return number
        if base is str:
            if isinstance(value, str):
                return value
            raise ValueError("expected a string")
    except ValueError as exc:
        reason = str(exc)
        if "could not convert" in reason:
            reason = "expected a number"
        raise SettingsError(f"{where}: {reason}, got {value!r}") from None
    raise SettingsError(f"{where}: unsupported setting type {key.type!r}")


def _check(values: dict[str, Any], sources: dict[str, str]) -> None:
    """Rules of the settings defined here (the scheduler's Config checks its own)."""

    def fail(key: str, reason: str) -> None:
        raise SettingsError(f"{key} (from {sources[key]}): {reason}, got {values[key]!r}")

    if not 0 <= values["port"] <= 65535:
        fail("port", "must be from 0 to 65535")
    if values["executor.concurrency"] < 1:
        fail("executor.concurrency", "must be >= 1")
    if values["executor.poll_wait_s"] <= 0:
        fail("executor.poll_wait_s", "must be > 0")
    for key in ("log_buffer_records", "max_log_line_chars", "max_log_lines"):
        if values[f"executor.{key}"] < 1:
            fail(f"executor.{key}", "must be >= 1")
    from ppacer.executor.registration import parse_labels, parse_queues

    try:
        parse_queues(values["executor.queues"])
    except ValueError:
        fail("executor.queues", "name at least one queue, e.g. 'gpu,default'")
    try:
        parse_labels(values["executor.labels"])
    except ValueError:
        fail("executor.labels", "must be comma-separated key=value pairs, e.g. 'zone=eu'")
    dask = values["executor.dask"]
    if dask is not None and not re.fullmatch(r"[a-z+]+://\S+|\S+:\d+", dask):
        fail("executor.dask", "must be a Dask scheduler address, e.g. tcp://host:8786")
    if (values["tls_cert"] is None) != (values["tls_key"] is None):
        if values["tls_cert"] is None:
            fail("tls_key", "needs tls_cert too")
        fail("tls_cert", "needs tls_key too")
    for key in ("tls_cert", "tls_key", "ca_file"):
        if values[key] is not None and not Path(values[key]).is_file():
            fail(key, "no such file")
    if values["log_level"].upper() not in logging.getLevelNamesMapping():
        fail("log_level", "must be DEBUG, INFO, WARNING or ERROR")
    values["log_level"] = values["log_level"].upper()
    if values["log_format"] not in _LOG_FORMATS:
        fail("log_format", "must be 'text' or 'json'")
    url = values["url"]
    if url is not None and not re.fullmatch(r"https?://[^/\s?#]+(/\S*)?", url):
        fail("url", "must be an http:// or https:// URL of the scheduler")


def _build(cls: type[Any], values: dict[str, Any], prefix: str = "") -> Any:
    kwargs: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = prefix + f.name
        if dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = _build(hints[f.name], values, name + ".")
        else:
            kwargs[f.name] = values[name]
    return cls(**kwargs)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise SettingsError(f"settings file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path}: not valid TOML: {exc}") from None


def _defaults() -> dict[str, Any]:
    defaults = Settings()
    out: dict[str, Any] = {}
    for key in _KEYS:
        obj: Any = defaults
        for part in key.path:
            obj = getattr(obj, part)
        out[key.name] = obj
    return out


def load_settings(
    config_file: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> tuple[Settings, list[Setting]]:
    """Load the settings: defaults < TOML file < environment < ``flags``.

    ``config_file`` (or ``PPACER_CONFIG``) names a file that must exist; without
    either, ``./ppacer.toml`` is read if it exists. ``flags`` maps dotted keys
    to values given on the command line (None: not given). Returns the settings
    and, for ``config show``, every key with its value and source.
    """
    env = os.environ if env is None else env
    values = _defaults()
    sources = dict.fromkeys(values, "default")
    path: Path | None = None
    if config_file is not None:
        path = Path(config_file)
    elif env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV])
    elif Path(DEFAULT_CONFIG_FILE).is_file():
        path = Path(DEFAULT_CONFIG_FILE)
    if path is not None:
        where = f"file {path}"
        for name, value in _flatten(_read_file(path), f"settings file {path}").items():
            values[name] = _coerce(_BY_NAME[name], value, where)
            sources[name] = where
    for var, raw in env.items():
        if not var.startswith(_PREFIX) or var == CONFIG_ENV:
            continue
        key = _BY_ENV.get(var)
        if key is None:
            section = var[len(_PREFIX) :].split("_", 1)[0].lower()
            if section in _SECTIONS:
                raise SettingsError(f"{var}: unknown setting (no key {section}.* of that name)")
            continue  # other programs' PPACER_* variables are not ours to judge
        values[key.name] = _coerce(key, raw, f"env {var}")
        sources[key.name] = f"env {var}"
    for name, value in (flags or {}).items():
        if value is None:
            continue
        if name not in _BY_NAME:
            raise SettingsError(f"unknown setting {name!r}")
        flag = _FLAGS.get(name) or "--" + name.split(".")[-1].replace("_", "-")
        values[name] = _coerce(_BY_NAME[name], value, f"flag {flag}")
        sources[name] = f"flag {flag}"
    if sources["logs_db"] == "default" and values["db"].startswith(("postgresql", "postgres://")):
        # One PostgreSQL database holds both: nothing to set up for the logs.
        values["logs_db"] = values["db"]
        sources["logs_db"] = f"same as db ({sources['db']})"
    _check(values, sources)
    try:
        settings = _build(Settings, values)
    except ValueError as exc:
        raise SettingsError(_name_config_error(str(exc), sources)) from None
    rows = [Setting(k.name, values[k.name], sources[k.name], k.name in _SECRET_KEYS) for k in _KEYS]
    return settings, rows


def _name_config_error(message: str, sources: dict[str, str]) -> str:
    """``Config.x must be ...`` becomes ``scheduler.x (from <source>): must be ...``."""
    match = re.match(r"Config\.(\w+):? (.*)", message)
    if match is None:
        return message
    key = f"scheduler.{match.group(1)}"
    return f"{key} (from {sources.get(key, 'default')}): {match.group(2)}"


def describe_settings(rows: list[Setting]) -> list[dict[str, str]]:
    """The rows of ``config show`` as JSON-friendly dicts (secrets masked)."""
    return [{"key": r.key, "value": r.shown, "source": r.source} for r in rows]
