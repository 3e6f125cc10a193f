"""E-mail notifications over SMTP (standard library only)."""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from email.message import EmailMessage

from ppacer.notify.message import DEFAULT_TEMPLATE, Message

__all__ = ["EmailNotifier"]


class EmailNotifier:
    """Sends each message as a plain-text e-mail through an SMTP server."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        *,
        template: str = DEFAULT_TEMPLATE,
        subject_template: str = "[ppacer] {title}",
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout_s: float = 10.0,
    ) -> None:
        if not recipients:
            raise ValueError("EmailNotifier needs at least one recipient")
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = list(recipients)
        self.template = template
        self.subject_template = subject_template
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout_s = timeout_s

    def email(self, message: Message) -> EmailMessage:
        """The e-mail sent for ``message``."""
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.recipients)
        mail["Subject"] = message.render(self.subject_template).splitlines()[0]
        mail.set_content(message.render(self.template))
        return mail

    def send(self, message: Message) -> None:
        """Connect, optionally STARTTLS and log in, send."""
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username is not None:
                smtp.login(self.username, self.password or "")
            smtp.send_message(self.email(message))

    def __repr__(self) -> str:
        return f"EmailNotifier({self.host}:{self.port} -> {self.recipients})"
