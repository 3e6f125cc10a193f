"""The one JSON parser for what users and clients send: the API's bodies and the CLI's options.

JSON as the standard defines it, and only what ppacer can store and send on:

- ``NaN``, ``Infinity`` and numbers out of a 64-bit float's range (``1e400``) are
  errors (Python's ``json`` accepts them, and no encoder could send them back);
- nesting is bounded (:data:`MAX_DEPTH`): a hundred thousand brackets are an
  error, not a ``RecursionError``;
- a lone surrogate (``"\\ud800"``, a legal JSON escape that is not text) is an
  error naming where it is: it could be stored but never encoded again, and would
  fail every later read of what holds it.

Errors are :class:`JsonInputError` (a ``ValueError``): its ``kind`` says which
rule was broken, ``problem`` what was wrong, and ``field`` the dotted path of the
bad value (``params.k``), or ``None`` when the text itself is not JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = [
    "DEPTH",
    "MAX_DEPTH",
    "NON_FINITE",
    "SURROGATE",
    "SYNTAX",
    "JsonInputError",
    "check_text",
    "loads_strict",
]

#: Deepest nesting of arrays and objects accepted.
MAX_DEPTH = 64


#: The rules, as :attr:`JsonInputError.kind`.
SYNTAX, NON_FINITE, DEPTH, SURROGATE = "syntax", "non_finite", "depth", "surrogate"


class JsonInputError(ValueError):
    """JSON that ppacer refuses: ``kind`` (which rule), ``problem`` and ``field`` (or None)."""

    def __init__(self, kind: str, problem: str, field: str | None = None) -> None:
        if kind in (SYNTAX, NON_FINITE):
            message = f"not valid JSON: {problem}"
        else:
            message = f"{field}: {problem}" if field else problem
        super().__init__(message)
        self.kind = kind
        self.problem = problem
        self.field = field


def _no_constant(name: str) -> Any:
    raise JsonInputError(
        NON_FINITE, f"non-finite number {name} is not allowed (JSON has no NaN or Infinity)"
    )


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        _no_constant(text)
    return value


def loads_strict(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``text`` strictly (see the module's docstring); raise :class:`JsonInputError`."""
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except JsonInputError:
        raise
    except RecursionError:
        raise JsonInputError(DEPTH, f"nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError:
        raise JsonInputError(SYNTAX, "not UTF-8") from None
    except ValueError as exc:
        raise JsonInputError(SYNTAX, str(exc)) from None
    if not _plainly_fine(text, max_depth):
        check_text(value, max_depth=max_depth)
    return value


def _plainly_fine(text: str | bytes, max_depth: int) -> bool:
    """Whether the text alone shows its value breaks no rule, with no walk over it.

    ASCII text without a ``\\u`` escape decodes to no surrogate, and with fewer
    brackets than ``max_depth`` cannot nest deeper: most bodies (an executor's
    reports) are such, and three scans of the text cost less than a walk.
    """
    if isinstance(text, str):
        return (
            text.isascii() and "\\u" not in text and text.count("[") + text.count("{") < max_depth
        )
    return text.isascii() and b"\\u" not in text and text.count(b"[") + text.count(b"{") < max_depth


def check_text(value: Any, path: str = "", *, max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`JsonInputError` if ``value`` nests too deeply or holds a lone surrogate.

    Walks without recursion; strings that are ASCII (nearly all) cost one check,
    and the path of the bad value is worked out only when there is one.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is str:
            if not item.isascii() and _unencodable(item):
                break
        elif kind is dict:
            if depth >= max_depth:
                break
            if any(not key.isascii() and _unencodable(key) for key in item):
                break
            stack.extend([(child, depth + 1) for child in item.values()])
        elif kind is list:
            if depth >= max_depth:
                break
            stack.extend([(child, depth + 1) for child in item])
    else:
        return
    _find_bad(value, path, max_depth)


def _find_bad(value: Any, where: str, max_depth: int, depth: int = 0) -> None:
    """The walk of :func:`check_text` again, in document order, raising for the first
    problem with where it is (recursive: it runs only for a bad value, and no deeper than
    ``max_depth``)."""
    if isinstance(value, str):
        _check_str(value, where)
    elif isinstance(value, dict | list):
        if depth >= max_depth:
            raise JsonInputError(DEPTH, f"nested deeper than {max_depth} levels", where or None)
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            if isinstance(key, str):
                _check_str(key, where)
            _find_bad(child, f"{where}.{key}" if where else str(key), max_depth, depth + 1)


def _unencodable(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (it cannot be written as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_str(text: str, where: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end].encode("unicode_escape").decode()
        raise JsonInputError(
            SURROGATE,
            f"text with a lone surrogate ({bad}) is not valid Unicode and cannot be stored",
            where or None,
        ) from None
