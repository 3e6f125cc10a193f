"""Watching the DAG files and loading them again when they change (``--reload``).

A :class:`DagReloader` watches the directory of the DAG file (or module) a
command was given, in a thread of its own (``watchfiles``, which uvicorn's
standard extra brings). When a Python file there changes, the user's modules
under that directory are forgotten and the target is imported again, and the
new registry goes to ``on_registry`` (the scheduler's and the executor's
``reload``: runs under way keep the code they started with, new runs take the
new one). An edit that breaks the DAGs (a syntax error, an invalid DAG) goes to
``on_error`` instead, with the file and line: the DAGs loaded before stay in use.
The flag, and what each command hands the new registry to, are
:mod:`ppacer.cli.reload_flag`.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from ppacer.cli.loader import describe_load_error, load_registry
from ppacer.dag.dag import Registry

__all__ = ["DagReloader", "watched_dir"]

log = logging.getLogger("ppacer.reload")

# Changes closer together than this are one reload (an editor writes a file in steps).
_DEBOUNCE_MS = 300


def watched_dir(target: str) -> Path:
    """The directory holding ``target``: a ``.py`` file's, or an importable module's."""
    path = Path(target)
    if target.endswith(".py") or path.is_file():
        return path.resolve().parent
    spec = importlib.util.find_spec(target)
    if spec is None or spec.origin is None:
        return Path.cwd().resolve()
    origin = Path(spec.origin).resolve()
    # A package's modules live beside its __init__.py; a module's beside it.
    return origin.parent


def _forget_modules_under(directory: Path) -> None:
    """Drop the modules imported from ``directory`` (the user's), so they are read again."""
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file is None or name.split(".")[0] == "ppacer":
            continue
        try:
            Path(file).resolve().relative_to(directory)
        except ValueError:
            continue
        if "site-packages" not in Path(file).parts:
            del sys.modules[name]


class DagReloader:
    """Watches ``target``'s directory and reloads the DAGs when a Python file changes."""

    def __init__(
        self,
        target: str,
        on_registry: Callable[[Registry], None],
        on_error: Callable[[str], None],
    ) -> None:
        self.target = target
        self.directory = watched_dir(target)
        self._on_registry = on_registry
        self._on_error = on_error
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ppacer-reload", daemon=True)

    def start(self) -> None:
        """Start watching (returns once the watcher is in place)."""
        self._thread.start()
        self._ready.wait(10.0)

    def stop(self) -> None:
        """Stop watching and wait for a reload in progress."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def reload_now(self) -> bool:
        """Load the DAGs again and hand them on; whether they loaded."""
        _forget_modules_under(self.directory)
        try:
            registry = load_registry(self.target)
        except Exception as exc:
            self._on_error(describe_load_error(self.target, exc))
            return False
        try:
            self._on_registry(registry)
        except Exception as exc:
            log.exception("hot reload of %s failed", self.target)
            self._on_error(f"{self.target}: {type(exc).__name__}: {exc}")
            return False
        log.info("reloaded the DAGs of %s (%d DAGs)", self.target, len(registry))
        return True

    def _watch(self) -> None:
        from watchfiles import PythonFilter, watch

        changes = watch(
            self.directory,
            watch_filter=PythonFilter(),
            stop_event=self._stop,
            debounce=_DEBOUNCE_MS,
            yield_on_timeout=True,
            rust_timeout=200,
        )
        for batch in changes:
            if not self._ready.is_set():
                self._ready.set()  # the first timeout: the watcher is in place
            if batch and not self._stop.is_set():
                log.info(
                    "DAG files changed (%s): reloading",
                    ", ".join(sorted({Path(p).name for _, p in batch})),
                )
                self.reload_now()
        self._ready.set()
