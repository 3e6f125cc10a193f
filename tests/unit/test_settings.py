"""Settings: defaults < ppacer.toml < PPACER_* environment < flags; errors name the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ppacer.scheduler.config import Config
from ppacer.settings import Settings, SettingsError, describe_settings, load_settings


@pytest.fixture(autouse=True)
def _no_ambient_settings(tmp_path, monkeypatch):
    """No ppacer.toml from the working directory, no PPACER_* variables from the shell."""
    monkeypatch.chdir(tmp_path)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ppacer.toml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_env():
    settings, rows = load_settings(env={})
    assert settings == Settings()
    assert settings.scheduler_url == "http://127.0.0.1:9321"
    assert {r.source for r in rows} == {"default"}


def test_precedence_defaults_file_env_flags(tmp_path):
    _write(
        tmp_path,
        'db = "file.db"\nport = 7000\nlog_level = "debug"\n'
        '[executor]\nconcurrency = 3\n[scheduler]\ntimezone = "Europe/Warsaw"\n',
    )
    env = {"PPACER_PORT": "7001", "PPACER_EXECUTOR_CONCURRENCY": "4"}
    settings, rows = load_settings(env=env, flags={"executor.concurrency": 5, "host": None})
    assert settings.db == "file.db"  # file over default
    assert settings.port == 7001  # env over file
    assert settings.executor.concurrency == 5  # flag over env
    assert settings.host == "127.0.0.1"  # a flag given as None is not given
    assert settings.log_level == "DEBUG"
    assert settings.scheduler.timezone == "Europe/Warsaw"
    sources = {r.key: r.source for r in rows}
    assert sources["db"] == "file ppacer.toml"
    assert sources["port"] == "env PPACER_PORT"
    assert sources["executor.concurrency"] == "flag --concurrency"
    assert sources["host"] == "default"


def test_config_file_named_by_argument_or_env(tmp_path):
    other = tmp_path / "other.toml"
    other.write_text("port = 1234\n")
    assert load_settings(other, env={})[0].port == 1234
    assert load_settings(env={"PPACER_CONFIG": str(other)})[0].port == 1234
    with pytest.raises(SettingsError, match=r"settings file .*missing\.toml"):
        load_settings(tmp_path / "missing.toml", env={})


def test_every_scheduler_config_field_is_a_setting():
    """The [scheduler] section follows Config's dataclass: new fields need no code here."""
    _settings, rows = load_settings(env={})
    keys = {r.key for r in rows}
    for field in dataclasses.fields(Config):
        assert f"scheduler.{field.name}" in keys
    # An empty variable unsets an optional value.
    assert load_settings(env={"PPACER_SCHEDULER_API_TOKEN": ""})[0].scheduler.api_token is None


def test_scheduler_fields_are_typed_from_env():
    env = {
        "PPACER_SCHEDULER_DAG_RUN_QUEUE_LEN": "7",
        "PPACER_SCHEDULER_MAX_POP_WAIT_S": "2.5",
        "PPACER_SCHEDULER_API_TOKEN": "t0k",
    }
    config = load_settings(env=env)[0].scheduler
    assert (config.dag_run_queue_len, config.max_pop_wait_s, config.api_token) == (7, 2.5, "t0k")


def test_unknown_keys_are_errors_naming_them(tmp_path):
    _write(tmp_path, "prot = 1\n")
    with pytest.raises(SettingsError, match=r"unknown key 'prot' \(did you mean 'port'\?\)"):
        load_settings(env={})
    _write(tmp_path, "[scheduler]\nmax_pop_wait = 1\n")
    with pytest.raises(SettingsError, match=r"unknown key 'scheduler.max_pop_wait'"):
        load_settings(env={})
    _write(tmp_path, "[server]\nport = 1\n")
    with pytest.raises(SettingsError, match=r"unknown section \[server\]"):
        load_settings(env={})


def test_unknown_env_in_our_sections_is_an_error_others_are_ignored():
    with pytest.raises(SettingsError, match="PPACER_SCHEDULER_TIMEZON: unknown setting"):
        load_settings(env={"PPACER_SCHEDULER_TIMEZON": "UTC"})
    with pytest.raises(SettingsError, match="PPACER_EXECUTOR_THREADS: unknown setting"):
        load_settings(env={"PPACER_EXECUTOR_THREADS": "3"})
    # Another program's variable with our prefix (e.g. an example's knob) is left alone.
    assert load_settings(env={"PPACER_HELLO_INTERVAL_S": "1"})[0] == Settings()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PPACER_PORT": "http"}, r"port \(from env PPACER_PORT\): expected a whole number"),
        ({"PPACER_PORT": "70000"}, r"port \(from env PPACER_PORT\): must be from 0 to 65535"),
        ({"PPACER_EXECUTOR_CONCURRENCY": "0"}, r"executor.concurrency .*must be >= 1"),
        ({"PPACER_LOG_FORMAT": "xml"}, r"log_format \(from env PPACER_LOG_FORMAT\)"),
        ({"PPACER_LOG_LEVEL": "loud"}, r"log_level .*DEBUG, INFO"),
        ({"PPACER_SCHEDULER_MAX_POP_WAIT_S": "soon"}, r"scheduler.max_pop_wait_s .*number"),
        ({"PPACER_EXECUTOR_POLL_WAIT_S": "nan"}, r"executor.poll_wait_s .*finite.*'nan'"),
        ({"PPACER_SCHEDULER_LEASE_TIMEOUT_S": "inf"}, r"scheduler.lease_timeout_s .*finite"),
        ({"PPACER_URL": "notaurl"}, r"url \(from env PPACER_URL\): must be an http"),
        ({"PPACER_URL": "ftp://host/x"}, r"url \(from env PPACER_URL\): must be an http"),
        (
            {"PPACER_SCHEDULER_TIMEZONE": "Mars/Olympus"},
            r"scheduler.timezone \(from env PPACER_SCHEDULER_TIMEZONE\): unknown IANA timezone",
        ),
        (
            {"PPACER_SCHEDULER_DAG_RUN_QUEUE_LEN": "0"},
            r"scheduler.dag_run_queue_len \(from env PPACER_SCHEDULER_DAG_RUN_QUEUE_LEN\): "
            r"must be >= 1, got 0",
        ),
    ],
)
def test_bad_values_name_the_key_and_source(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env=env)


def test_file_values_are_type_checked_not_guessed(tmp_path):
    _write(tmp_path, 'port = "9000"\n')
    with pytest.raises(SettingsError, match=r"port \(from file ppacer.toml\): expected a whole"):
        load_settings(env={})
    _write(tmp_path, "[scheduler]\nmax_pop_wait_s = 5\n")  # an integer is a fine float
    assert load_settings(env={})[0].scheduler.max_pop_wait_s == 5.0
    _write(tmp_path, "port = [\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(env={})


def test_secrets_are_masked_and_token_protects_the_scheduler(tmp_path):
    _write(tmp_path, 'token = "hunter2"\ndb = "postgresql://ppacer:pw@db:5432/ppacer"\n')
    settings, rows = load_settings(env={})
    shown = {r["key"]: r["value"] for r in describe_settings(rows)}
    assert shown["token"] == "********"
    assert shown["db"] == "postgresql://ppacer:********@db:5432/ppacer"
    assert "hunter2" not in str(describe_settings(rows))
    # One token: the scheduler requires what clients send, unless its own is set.
    assert settings.scheduler_config.api_token == "hunter2"
    own = load_settings(env={"PPACER_SCHEDULER_API_TOKEN": "other"})[0]
    assert own.scheduler_config.api_token == "other"


def test_url_defaults_from_host_and_port():
    assert load_settings(env={"PPACER_PORT": "8080"})[0].scheduler_url == "http://127.0.0.1:8080"
    wide = load_settings(env={"PPACER_HOST": "0.0.0.0"})[0]
    assert wide.scheduler_url == "http://127.0.0.1:9321"
    given = load_settings(env={"PPACER_URL": "http://sched:1/"})[0]
    assert given.scheduler_url == "http://sched:1"


def test_a_postgresql_db_keeps_the_logs_in_the_same_database_unless_told_otherwise():
    url = "postgresql://ppacer:pw@db:5432/ppacer"
    settings, rows = load_settings(env={"PPACER_DB": url})
    assert settings.logs_db == url
    assert {r.key: r.source for r in rows}["logs_db"] == "same as db (env PPACER_DB)"
    apart, _ = load_settings(env={"PPACER_DB": url, "PPACER_LOGS_DB": "logs.db"})
    assert apart.logs_db == "logs.db"
    assert load_settings(env={"PPACER_DB": "s.db"})[0].logs_db == "logs.db"  # SQLite: a file
