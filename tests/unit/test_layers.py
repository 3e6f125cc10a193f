"""The layers of the package, held: imports point down, never up, and close no cycle.

Every import of every module counts: top-level ones, those inside functions and
those under ``TYPE_CHECKING``. The table is the README's Layout section.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

#: Each part of the package (a module or a subpackage of ``ppacer``) and its layer.
LAYERS = {
    "version": 0,
    "timeutils": 0,
    "errors": 0,
    "backoff": 0,
    "logconfig": 0,
    "redact": 0,
    "gotime": 0,
    "lazy": 0,
    "dag": 1,
    "api": 2,
    "db": 2,
    "notify": 2,
    "tasklog": 2,
    "testing": 2,
    "scheduler": 3,
    "executor": 3,
    "server": 4,
    "ui": 4,
    "app": 5,
    "local": 5,
    "settings": 5,
    "cli": 6,
    "__main__": 7,
    # The package root re-exports the public names (lazily), so it sits above them.
    "__init__": 7,
    "examples": 8,
}
#: Imports between parts of one layer that are allowed (all others are not).
SIDEWAYS = {
    ("gotime", "timeutils"),  # the original's forms of our stored timestamps
    ("tasklog", "db"),  # the logs-DB handler writes through the table's module
    ("local", "app"),  # the one-process runner runs the composition root's scheduler
}
#: Imports that point down but are forbidden all the same.
FORBIDDEN = {
    ("executor", "db"),  # executors run anywhere: they never open the scheduler's database
    ("executor", "scheduler"),
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "ppacer").rglob("*.py"):
        rel = path.relative_to(SRC).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """Every ppacer module ``name`` imports, with its line (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.append((base, node.lineno))
            # ``from ppacer.api import models``: the submodule is what is imported.
            out += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return [(m, line) for m, line in out if m == "ppacer" or m.startswith("ppacer.")]


def _part(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target, _ in _imports(name, path):
            if target in modules and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def test_every_part_of_the_package_has_a_layer() -> None:
    assert {_part(m) for m in _modules()} <= set(LAYERS)


def test_no_module_imports_a_layer_above_its_own() -> None:
    modules = _modules()
    wrong = []
    for name, path in sorted(modules.items()):
        mine = _part(name)
        for target, line in _imports(name, path):
            theirs = _part(target)
            known = target in modules or target.rpartition(".")[0] in modules
            if theirs == mine or not known:
                continue
            if (mine, theirs) in FORBIDDEN:
                wrong.append(f"{path.relative_to(SRC)}:{line}: {mine} must never import {target}")
            elif LAYERS[theirs] > LAYERS[mine] or (
                LAYERS[theirs] == LAYERS[mine] and (mine, theirs) not in SIDEWAYS
            ):
                wrong.append(
                    f"{path.relative_to(SRC)}:{line}: {mine} (layer {LAYERS[mine]}) imports "
                    f"{target} (layer {LAYERS[theirs]})"
                )
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_the_layer_test_sees_imports_inside_functions_and_type_checking(tmp_path: Path) -> None:
    # The walker must not miss the imports that once hid the upward ones.
    path = tmp_path / "m.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ppacer.app import Scheduler\n"
        "def f():\n    from ppacer.ui import views\n    import ppacer.cli\n"
    )
    found = {m for m, _ in _imports("ppacer.dag.m", path)}
    assert {"ppacer.app", "ppacer.ui.views", "ppacer.cli"} <= found


def test_importing_the_dag_model_loads_no_server_database_or_validation_library() -> None:
    code = (
        "import sys, ppacer, ppacer.dag\n"
        "heavy = [m for m in ('starlette', 'sqlalchemy', 'uvicorn', 'pydantic', 'jinja2')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""


def test_public_names_load_on_first_use() -> None:
    code = "import ppacer; print(ppacer.Scheduler.__module__, ppacer.Client.__module__)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["ppacer.app", "ppacer.api.client"]
