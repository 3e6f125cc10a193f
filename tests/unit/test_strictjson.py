"""The strict JSON parser's checks: nesting and lone surrogates, and where they are."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ppacer.api.strictjson import (
    DEPTH,
    MAX_DEPTH,
    SURROGATE,
    JsonInputError,
    check_text,
    loads_strict,
)

# Text with lone surrogates now and then (what a "\ud800" escape decodes to), letters
# (ASCII and not) and digits; keys have no dots, so that a path names one place.
_chars = st.characters(categories=["Cs", "Ll", "Lu", "Lo", "Nd"])
_text = st.text(_chars, max_size=5)
_key = st.text(_chars, min_size=1, max_size=4)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_key, inner, max_size=3),
    max_leaves=12,
)


def _first_problem(value: Any, where: str, depth: int, limit: int) -> tuple[str, str] | None:
    """The rule broken and the path of the bad value, found by plain recursion (the oracle)."""
    if isinstance(value, str):
        return None if _encodes(value) else (SURROGATE, where)
    if isinstance(value, dict | list):
        if depth >= limit:
            return (DEPTH, where)
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            if isinstance(key, str) and not _encodes(key):
                return (SURROGATE, where)
            found = _first_problem(child, f"{where}.{key}" if where else str(key), depth + 1, limit)
            if found is not None:
                return found
    return None


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@given(_json, st.integers(min_value=1, max_value=4))
def test_a_value_is_refused_exactly_when_it_breaks_a_rule(value: Any, limit: int) -> None:
    expected = _first_problem(value, "", 0, limit)
    if expected is None:
        check_text(value, max_depth=limit)
        return
    with pytest.raises(JsonInputError) as caught:
        check_text(value, max_depth=limit)
    assert caught.value.kind == expected[0]
    # The walk may meet another bad value first; it names one that is bad.
    field = caught.value.field or ""
    problem = _first_problem(_at(value, field), field, field.count(".") + bool(field), limit)
    assert problem is not None and problem[0] == caught.value.kind


@given(_json, st.booleans(), st.booleans(), st.integers(min_value=1, max_value=4))
def test_parsing_text_refuses_what_the_walk_refuses(
    value: Any, ascii_only: bool, as_bytes: bool, limit: int
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    if not ascii_only:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return  # not text a client could send
    sent: str | bytes = text.encode("utf-8") if as_bytes else text
    try:
        check_text(value, max_depth=limit)
    except JsonInputError as walked:
        with pytest.raises(JsonInputError) as parsed:
            loads_strict(sent, max_depth=limit)
        assert (parsed.value.kind, parsed.value.field) == (walked.kind, walked.field)
    else:
        assert loads_strict(sent, max_depth=limit) == value


def _at(value: Any, path: str) -> Any:
    for part in path.split(".") if path else []:
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def test_errors_name_the_bad_value() -> None:
    with pytest.raises(JsonInputError, match=r"^params\.k: text with a lone surrogate"):
        loads_strict('{"params": {"k": "a\\ud800"}}')
    with pytest.raises(JsonInputError, match=r"^a\.1: nested deeper than 2 levels"):
        check_text({"a": [0, [[1]]]}, max_depth=2)
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(JsonInputError) as caught:
        loads_strict(deep)
    assert caught.value.kind == DEPTH
    assert loads_strict('{"ok": ["\\u00e9", 1.5]}') == {"ok": ["é", 1.5]}
