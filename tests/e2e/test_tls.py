"""HTTPS: the scheduler serves it with a certificate and key; clients and executors verify it.

The certificates are made here: a private CA and a server certificate it
signs, for 127.0.0.1 and localhost. A client given the CA works; one without
it fails with one clear line; an https:// URL to a plain-HTTP scheduler too.
"""

from __future__ import annotations

import datetime
import ipaddress
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import ppacer
from ppacer.api.client import Client, TLSError
from ppacer.dag.status import SchedulerState
from ppacer.executor.executor import Executor
from tests.cli.test_executor_failures import PPACER_EXECUTOR, ROOT, clean_env, the_error_line
from tests.conftest import wait_for, wait_run_finished
from tests.e2e.remote_dags import dags
from tests.e2e.test_executors import free_port


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1/localhost it signs: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ppacer test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture
def certs(tmp_path: Path) -> tuple[Path, Path, Path]:
    return make_certificates(tmp_path)


@pytest.fixture
def https_runner(start_local, certs):
    _, cert, key = certs
    return start_local(dags, with_executor=False, tls_cert=str(cert), tls_key=str(key))


def test_a_client_with_the_ca_works_and_one_without_it_says_what_to_do(https_runner, certs):
    ca = certs[0]
    assert https_runner.url.startswith("https://127.0.0.1:")
    with Client(https_runner.url, ca_file=str(ca)) as client:
        assert client.get_state() is SchedulerState.RUNNING
    with Client(https_runner.url) as client, pytest.raises(TLSError) as caught:
        client.get_state()
    message = str(caught.value)
    assert "\n" not in message
    assert https_runner.url in message and "not trusted" in message and "--ca-file" in message


def test_an_https_url_to_a_plain_http_scheduler_is_a_clear_error(start_local):
    runner = start_local(dags, with_executor=False)
    url = runner.url.replace("http://", "https://")
    with Client(url) as client, pytest.raises(TLSError, match="does not speak TLS"):
        client.get_state()


def test_an_executor_with_the_ca_runs_tasks_and_ships_their_logs_over_https(
    https_runner, certs, db_paths
):
    executor = Executor(Client(https_runner.url, ca_file=str(certs[0])), dags, poll_wait_s=1.0)
    executor.start()
    try:
        run_id = https_runner.client.trigger_dag_run("hello")["runId"]
        (run,) = wait_run_finished(db_paths[0], "hello")
        assert run["Status"] == "SUCCESS"
        logs = https_runner.client.get_task_logs(run_id, "hi")
        assert [r["message"] for r in logs["records"]] == ["hello from hi"]
    finally:
        assert executor.stop(10)


def test_ppacer_executor_without_the_ca_exits_2_and_with_it_serves(https_runner, certs, db_paths):
    result = subprocess.run(
        [*PPACER_EXECUTOR, "--url", https_runner.url],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = the_error_line(result)
    assert "not trusted" in line and "--ca-file" in line
    env = {**clean_env(), "PPACER_CA_FILE": str(certs[0])}
    proc = subprocess.Popen(
        [*PPACER_EXECUTOR, "--url", https_runner.url],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        https_runner.client.trigger_dag_run("hello")
        (run,) = wait_run_finished(db_paths[0], "hello")
        assert run["Status"] == "SUCCESS"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def ppacer_scheduler(directory: Path, port: int) -> list[str]:
    """``ppacer scheduler`` of the test DAGs on ``port`` with SQLite files in ``directory``."""
    db, logs = str(directory / "s.db"), str(directory / "l.db")
    command = ["scheduler", "tests.e2e.remote_dags", "--port", str(port)]
    return [sys.executable, "-m", "ppacer", *command, "--db", db, "--logs-db", logs]


def test_ppacer_scheduler_serves_https_with_tls_cert_and_tls_key(certs, tmp_path: Path):
    ca, cert, key = certs
    port = free_port()
    proc = subprocess.Popen(
        [*ppacer_scheduler(tmp_path, port), "--tls-cert", str(cert), "--tls-key", str(key)],
        cwd=ROOT,
        env={**clean_env(), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(2)]
        assert f"https://127.0.0.1:{port}/ui" in "".join(banner), banner
        with Client(f"https://127.0.0.1:{port}", ca_file=str(ca)) as client:

            def running() -> bool:
                try:
                    return client.get_state() is SchedulerState.RUNNING
                except ppacer.errors.SchedulerUnavailableError:
                    return False

            wait_for(running, what="the HTTPS scheduler")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_a_key_that_does_not_match_is_refused_before_serving(certs, tmp_path: Path):
    _, cert, _ = certs
    (tmp_path / "other").mkdir()
    other_key = make_certificates(tmp_path / "other")[2]
    result = subprocess.run(
        [*ppacer_scheduler(tmp_path, 0), "--tls-cert", str(cert), "--tls-key", str(other_key)],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "tls_cert/tls_key" in result.stderr
    assert "Traceback" not in result.stderr


def test_scheduler_and_executor_in_one_process_talk_https_to_each_other(start_local, certs):
    # `ppacer run --tls-cert ...`: its executor trusts exactly the certificate it serves.
    _, cert, key = certs
    runner = start_local(dags, tls_cert=str(cert), tls_key=str(key))
    run_id = runner.client.trigger_dag_run("hello")["runId"]
    wait_for(lambda: runner.client.get_dag_run(run_id)["status"] == "SUCCESS", what="the run")
    logs = runner.client.get_task_logs(run_id, "hi")
    assert [r["message"] for r in logs["records"]] == ["hello from hi"]
