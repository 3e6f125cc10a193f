"""Notifications received by real local servers: a webhook (HTTP) and SMTP."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

import ppacer
from ppacer import TaskConfig
from ppacer.notify import Message, MultiNotifier
from ppacer.notify.email import EmailNotifier
from ppacer.notify.webhook import (
    DiscordNotifier,
    SlackNotifier,
    TelegramNotifier,
    WebhookNotifier,
)
from tests.conftest import Recorder, wait_for, wait_run_finished
from tests.e2e.test_runs import Note, manual_dag


class Inbox:
    """What a local server received."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[str, Any]] = []

    def add(self, where: str, item: Any) -> None:
        with self.lock:
            self.items.append((where, item))

    def at(self, where: str) -> list[Any]:
        with self.lock:
            return [item for w, item in self.items if w == where]


@pytest.fixture
def webhook_server() -> Iterator[tuple[str, Inbox]]:
    inbox = Inbox()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            inbox.add(self.path, json.loads(body))
            self.send_response(500 if self.path == "/broken" else 200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", inbox
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def failing_dag(recorder: Recorder) -> ppacer.Dag:
    root = ppacer.Node(
        Note("load", recorder, fail_times=5),
        TaskConfig(retries=1, send_alert_on_retry=True),
    )
    return manual_dag("nightly", root)


def test_webhook_slack_discord_and_telegram_get_failure_retry_and_run_notices(
    start_local, db_paths, webhook_server
):
    url, inbox = webhook_server
    notifier = MultiNotifier(
        [
            WebhookNotifier(f"{url}/hook"),
            SlackNotifier(f"{url}/slack", template="{title} | {error}"),
            DiscordNotifier(f"{url}/discord"),
            TelegramNotifier("TOKEN", 42, api_url=url),
            WebhookNotifier(f"{url}/broken"),  # answers 500: logged, changes nothing
        ]
    )
    runner = start_local(ppacer.Registry([failing_dag(Recorder())]), notifier=notifier)
    runner.client.trigger_dag_run("nightly")
    (run,) = wait_run_finished(db_paths[0], "nightly")
    assert run["Status"] == "FAILED"
    hooks = wait_for(lambda: inbox.at("/hook") if len(inbox.at("/hook")) == 3 else None)
    assert [h["kind"] for h in hooks] == ["task_retry", "task_failed", "dag_run_failed"]
    first = hooks[0]
    assert first["dag_id"] == "nightly" and first["task_id"] == "load" and first["retry"] == 0
    assert first["error"] == "RuntimeError: load boom #1"
    assert first["run_id"] == run["RunId"] and first["exec_ts"] == run["ExecTs"]
    assert "host" in first["runtime"] and "schedulerVersion" in first["runtime"]
    assert "DAG: nightly" in first["text"]
    slack = wait_for(lambda: inbox.at("/slack") if len(inbox.at("/slack")) == 3 else None)
    assert slack[1] == {
        "text": "DAG 'nightly' task 'load': task failed | RuntimeError: load boom #2"
    }
    discord = wait_for(lambda: inbox.at("/discord") if len(inbox.at("/discord")) == 3 else None)
    assert set(discord[0]) == {"content"}
    telegram = wait_for(
        lambda: (
            inbox.at("/botTOKEN/sendMessage")
            if len(inbox.at("/botTOKEN/sendMessage")) == 3
            else None
        )
    )
    assert telegram[0]["chat_id"] == 42 and "task failed, will retry" in telegram[0]["text"]


class Explodes:
    """A notifier that always raises."""

    def __init__(self) -> None:
        self.calls = 0

    def send(self, message: Message) -> None:
        self.calls += 1
        raise ConnectionError("the chat service is down")


def test_a_failing_notifier_never_breaks_scheduling(start_local, db_paths):
    notifier = Explodes()
    recorder = Recorder()
    runner = start_local(ppacer.Registry([failing_dag(recorder)]), notifier=notifier)
    for i in range(2):
        runner.client.trigger_dag_run("nightly", exec_ts=f"2026-01-0{i + 1}T00:00:00Z")
    runs = wait_run_finished(db_paths[0], "nightly", count=2)
    assert [r["Status"] for r in runs] == ["FAILED", "FAILED"]
    wait_for(lambda: notifier.calls == 6, what="six attempted notices")


class Blocks:
    """A notifier stuck until ``release`` is set (a webhook waiting out its timeout)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.sent: list[str] = []

    def send(self, message: Message) -> None:
        self.entered.set()
        self.release.wait(30)
        self.sent.append(message.kind)


class Keeps:
    """A notifier keeping the kinds it was sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, message: Message) -> None:
        self.sent.append(message.kind)


def test_a_slow_notifier_does_not_delay_the_others(start_local, db_paths):
    slow, fast = Blocks(), Keeps()
    runner = start_local(
        ppacer.Registry([failing_dag(Recorder())]), notifier=MultiNotifier([slow, fast])
    )
    try:
        runner.client.trigger_dag_run("nightly")
        wait_run_finished(db_paths[0], "nightly")
        expected = ["task_retry", "task_failed", "dag_run_failed"]
        wait_for(lambda: fast.sent == expected, what="all notices at the fast notifier")
        assert slow.entered.is_set() and slow.sent == []
    finally:
        slow.release.set()
    wait_for(lambda: slow.sent == expected, what="the slow notifier to catch up")


def test_a_notifier_too_far_behind_has_further_messages_dropped_and_logged(caplog):
    from ppacer.notify import _Dispatcher

    dispatcher = _Dispatcher(max_queued=2)
    slow = Blocks()
    try:
        for i in range(5):
            dispatcher.submit(slow, Message(f"m{i}", "dag", "2026-01-01T00:00:00Z"))
            if i == 0:
                wait_for(slow.entered.is_set, what="the first message to be taken")
    finally:
        slow.release.set()
    assert dispatcher.flush(30)
    # m0 was being sent, m1 and m2 were queued; m3 and m4 found the queue full.
    assert slow.sent == ["m0", "m1", "m2"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "ppacer.notify"]
    assert any("dropping m3" in w for w in warnings)
    assert any("2 messages were dropped" in w for w in warnings)


class Mailbox:
    """An aiosmtpd handler keeping the messages it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def test_email_notices_reach_a_real_smtp_server(start_local, db_paths):
    mailbox = Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        notifier = EmailNotifier("127.0.0.1", port, "ppacer@example.com", ["oncall@example.com"])
        root = ppacer.Node(Note("load", Recorder(), fail_times=1))
        runner = start_local(ppacer.Registry([manual_dag("mailed", root)]), notifier=notifier)
        runner.client.trigger_dag_run("mailed")
        wait_run_finished(db_paths[0], "mailed")
        wait_for(lambda: len(mailbox.messages) == 2, what="two e-mails")
    finally:
        controller.stop()
    recipients, raw = mailbox.messages[0]
    assert recipients == ["oncall@example.com"]
    mail = message_from_bytes(raw)
    assert mail["Subject"] == "[ppacer] DAG 'mailed' task 'load': task failed"
    assert "Error: RuntimeError: load boom #1" in mail.get_payload()
    assert message_from_bytes(mailbox.messages[1][1])["Subject"] == (
        "[ppacer] DAG 'mailed': DAG run failed (task 'load')"
    )
