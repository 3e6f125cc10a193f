"""The run parameters a task's code reads, found in its source (nothing declares them yet).

A task reads its run's parameters as ``ctx.params["name"]``,
``ctx.params.get("name", default)`` or tests ``"name" in ctx.params``; the
stored source of its ``execute`` (or function) is parsed, never run, and
those reads with a constant name are listed with their default's text.
Names built at run time are not found.
"""

from __future__ import annotations

import ast
import functools

__all__ = ["params_read"]


def _is_params(node: ast.AST) -> bool:
    """``params`` or ``<anything>.params``."""
    return (isinstance(node, ast.Name) and node.id == "params") or (
        isinstance(node, ast.Attribute) and node.attr == "params"
    )


def _name(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


@functools.lru_cache(maxsize=1024)
def params_read(source: str) -> dict[str, str | None]:
    """Parameter names ``source`` reads, each with its default's source text (or None)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    found: dict[str, str | None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _is_params(node.value):
            name = _name(node.slice)
            if name is not None:
                found.setdefault(name, None)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and _is_params(node.func.value)
            and node.args
        ):
            name = _name(node.args[0])
            if name is not None:
                default = ast.unparse(node.args[1]) if len(node.args) > 1 else "None"
                if found.get(name) is None:
                    found[name] = default
        elif isinstance(node, ast.Compare) and any(
            isinstance(op, ast.In | ast.NotIn) for op in node.ops
        ):
            name = _name(node.left)
            if name is not None and any(_is_params(c) for c in node.comparators):
                found.setdefault(name, None)
    return found
