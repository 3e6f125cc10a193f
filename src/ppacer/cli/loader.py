"""Loading the user's DAGs from a Python file or module, for ``run``, ``scheduler``, ``executor``
and ``validate``.

``validate`` must report every invalid DAG, not only the first: it imports the
module under :func:`ppacer.dag.dag.collecting_errors`, so building or
registering an invalid DAG records the error and goes on (the invalid DAG is
left out) instead of raising. Nothing is patched.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from ppacer.dag.dag import Dag, Registry, collecting_errors
from ppacer.errors import DagValidationError, PpacerError

__all__ = ["LoadError", "Validation", "describe_load_error", "load_registry", "validate_target"]


class LoadError(PpacerError):
    """The file or module could not be imported, or defines no DAGs."""


def _import(target: str) -> ModuleType:
    """Import a ``.py`` file or a module name (the current directory is importable)."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    path = Path(target)
    if target.endswith(".py") or path.is_file():
        if not path.is_file():
            raise LoadError(f"{target}: no such file")
        path = path.resolve()
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise LoadError(f"{target}: cannot be loaded as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(path.stem, None)
            raise
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name == target.split(".")[0]:
            raise LoadError(f"{target}: no such file or module") from None
        raise


def _registry_of(module: ModuleType, target: str) -> Registry:
    """The module's Registry (``dags`` preferred), else one of its top-level DAGs."""
    values = vars(module)
    registries = {k: v for k, v in values.items() if isinstance(v, Registry)}
    if registries:
        return registries.get("dags") or next(iter(registries.values()))
    loose = [v for v in values.values() if isinstance(v, Dag)]
    if loose:
        return Registry(loose)
    raise LoadError(f"{target} defines no ppacer.Registry (or Dag) at top level")


# Where ppacer's own modules are: a traceback's frames there are not the user's line.
_PPACER_DIR = str(Path(__file__).resolve().parent.parent)


def describe_load_error(target: str, exc: BaseException) -> str:
    """``TARGET: Type: message (file.py, line N)``, pointing at the user's code.

    A SyntaxError names the file and line it was found in (not the import
    machinery's frame); another error names the innermost frame outside
    Python's import machinery, preferring the user's files to ppacer's.
    """
    if isinstance(exc, SyntaxError):
        where = f" ({Path(exc.filename or target).name}, line {exc.lineno})" if exc.lineno else ""
        return f"{target}: {type(exc).__name__}: {exc.msg}{where}"
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")
    ]
    users = [f for f in frames if not f.filename.startswith(_PPACER_DIR)]
    chosen = users or frames
    where = f" ({Path(chosen[-1].filename).name}, line {chosen[-1].lineno})" if chosen else ""
    return f"{target}: {type(exc).__name__}: {exc}{where}"


def load_registry(target: str) -> Registry:
    """Load the DAG registry from a Python file or module.

    The module defines a :class:`Registry` at top level (any name; ``dags`` is
    preferred when there are several), or only :class:`Dag` objects, which
    then form the registry. An invalid DAG raises its DagValidationError.
    """
    return _registry_of(_import(target), target)


@dataclass
class Validation:
    """What ``ppacer validate`` found: the valid DAGs and every error."""

    dag_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, exc: BaseException) -> None:
        """Record an error once."""
        text = str(exc)
        if text not in self.errors:
            self.errors.append(text)


def validate_target(target: str) -> Validation:
    """Import ``target`` and check every DAG in it; never raises for the user's mistakes."""
    found = Validation()
    try:
        with collecting_errors(found.add):
            module = _import(target)
            registry = _registry_of(module, target)
    except LoadError as exc:
        found.add(exc)
        return found
    except Exception as exc:
        found.add(LoadError(describe_load_error(target, exc)))
        return found
    for value in vars(module).values():
        if isinstance(value, Dag) and value.id not in registry:
            try:
                value.done()
            except DagValidationError as exc:
                found.add(exc)
    found.dag_ids = list(registry)
    return found
