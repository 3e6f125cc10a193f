"""A module imported on first use of one of its attributes.

The serving process of ``ppacer run`` loads no validation library until a
request needs one: modules that use the API's models on some routes only
(answers of the reads, the UI's data) name them through :func:`lazy_module`.
Unlike ``importlib.util.LazyLoader``, the import happens under the import
system's own lock, so threads may reach it together.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["lazy_module"]


class _LazyModule:
    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r}, {state}>"


def lazy_module(name: str) -> Any:
    """``name``, imported when one of its attributes is first read."""
    return _LazyModule(name)
