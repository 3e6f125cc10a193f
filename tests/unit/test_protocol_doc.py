"""docs/protocol.md documents every route of the one route table, as method and path."""

from __future__ import annotations

from pathlib import Path

from ppacer.api.routes import ROUTES

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_every_route_is_documented_with_its_method_and_path() -> None:
    text = DOC.read_text()
    missing = [
        f"{r.method} {r.path}" for r in ROUTES.values() if f"{r.method} {r.path}" not in text
    ]
    assert missing == [], f"routes not in docs/protocol.md: {missing}"
