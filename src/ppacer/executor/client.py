"""The scheduler's HTTP client, now :mod:`ppacer.api.client`; this name stays for old imports."""

from ppacer.api.client import Client

__all__ = ["Client"]
