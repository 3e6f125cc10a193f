"""Secrets kept out of what ppacer prints: tokens and the passwords in database URLs.

Everything that shows a setting, a database target or an error with one in it
(logs, ``config show``, ``db check``, start-up banners, the UI) goes through here.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "mask_secret", "redact_url", "redact_urls"]

#: What a secret is shown as.
MASK = "********"

# user:password@ in a URL (scheme://user:password@host...).
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]*@")


def mask_secret(value: str) -> str:
    """A secret as shown: masked, or empty when it is empty."""
    return MASK if value else ""


def redact_url(target: str) -> str:
    """A database path or URL as it may be shown: a URL's password masked."""
    return _URL_PASSWORD.sub(rf"\1{MASK}@", target)


def redact_urls(text: str) -> str:
    """``text`` (a message, an error) with the password of every URL in it masked."""
    return _URL_PASSWORD.sub(rf"\1{MASK}@", text)
