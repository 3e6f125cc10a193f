"""Notifiers that POST JSON: a generic webhook, Slack, Discord and Telegram.

They use the standard library's HTTP client (notifications are rare and sent
on a background thread), and raise on any non-2xx answer so the failure is
logged by :func:`ppacer.notify.send_safely`.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from typing import Any

from ppacer.notify.message import DEFAULT_TEMPLATE, Message

__all__ = ["DiscordNotifier", "SlackNotifier", "TelegramNotifier", "WebhookNotifier", "post_json"]


def post_json(
    url: str, payload: Mapping[str, Any], headers: Mapping[str, str], timeout_s: float
) -> int:
    """POST ``payload`` as JSON; return the status code, raise on anything but 2xx."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "ppacer", **headers},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        status: int = response.status
    if not 200 <= status < 300:
        raise RuntimeError(f"{url} answered {status}")
    return status


class WebhookNotifier:
    """POSTs the message as JSON (its fields plus ``text``, the rendered template)."""

    def __init__(
        self,
        url: str,
        *,
        template: str = DEFAULT_TEMPLATE,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must be http(s), got {url!r}")
        self.url = url
        self.template = template
        self.headers = dict(headers or {})
        self.timeout_s = timeout_s

    def payload(self, message: Message) -> dict[str, Any]:
        """The JSON body sent for ``message``."""
        return {**message.to_dict(), "text": message.render(self.template)}

    def send(self, message: Message) -> None:
        """POST the payload."""
        post_json(self.url, self.payload(message), self.headers, self.timeout_s)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url.split('?')[0]!r})"


class SlackNotifier(WebhookNotifier):
    """A Slack incoming webhook: ``{"text": ...}``."""

    def payload(self, message: Message) -> dict[str, Any]:
        """Slack's incoming-webhook body."""
        return {"text": message.render(self.template)}


class DiscordNotifier(WebhookNotifier):
    """A Discord webhook: ``{"content": ...}`` (Discord caps it at 2,000 characters)."""

    def payload(self, message: Message) -> dict[str, Any]:
        """Discord's webhook body."""
        return {"content": message.render(self.template)[:2000]}


class TelegramNotifier(WebhookNotifier):
    """A Telegram bot message through the Bot API's ``sendMessage``."""

    def __init__(
        self,
        bot_token: str,
        chat_id: str | int,
        *,
        template: str = DEFAULT_TEMPLATE,
        api_url: str = "https://api.telegram.org",
        timeout_s: float = 10.0,
    ) -> None:
        super().__init__(
            f"{api_url.rstrip('/')}/bot{bot_token}/sendMessage",
            template=template,
            timeout_s=timeout_s,
        )
        self.chat_id = chat_id

    def payload(self, message: Message) -> dict[str, Any]:
        """The Bot API's sendMessage body."""
        return {"chat_id": self.chat_id, "text": message.render(self.template)}

    def __repr__(self) -> str:
        return f"TelegramNotifier(chat_id={self.chat_id!r})"
