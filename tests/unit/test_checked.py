"""The executors' requests read by hand (``ppacer.api.checked``) against their models.

Whatever a hand check takes, the route's model (pydantic) takes too, as the same
values; whatever it does not take goes to the model, which decides and words the
error. And the common requests an executor sends are taken by hand, so a hop
loads no validation library.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ppacer.api import answers, checked
from ppacer.api.models import LogRecord, StatusReport, parse_exec_ts
from ppacer.api.routes import ROUTES
from ppacer.dag.status import TaskStatus
from ppacer.errors import InvalidInputError

# Values a field may hold: valid ones, and every kind of wrong one the models refuse.
_VALUE_LIST: list[Any] = [
    "",
    "x",
    "2024-01-02T03:04:05Z",
    "SUCCESS",
    "a\x00b",
    "y" * 21,
    "z" * 101,
    "w" * 201,
    -1,
    0,
    1,
    2,
    20,
    1000,
    1001,
    2**62,
    2**62 + 1,
    True,
    False,
    1.0,
    1.5,
    None,
    [],
    ["q"],
    ["a", "b"],
    ["a\x00"],
    [1],
    {},
    {"k": "v"},
    {"k\x00": "v"},
    {"k": "v\x00"},
    {"k": 1},
    {"d": {"t": "v"}},
    {"d": {"t": "v\x00"}},
    {"d": {"t": ["v"]}},
    {"d": {"t": 1}},
]
_VALUES = st.sampled_from(_VALUE_LIST)

_UPDATE = {
    "dagId": "d",
    "execTs": "2024-01-02T03:04:05Z",
    "taskId": "t",
    "retry": 0,
    "status": "SUCCESS",
    "taskError": None,
    "leaseToken": "tok",
    "output": {"n": 1},
    "branch": ["t2"],
}
_RECORD = {
    "dagId": "d",
    "execTs": "2024-01-02T03:04:05Z",
    "taskId": "t",
    "retry": 0,
    "seq": 3,
    "insertTs": "2024-01-02T03:04:06Z",
    "level": "INFO",
    "message": "hello",
    "attributes": {"a": [1, "\x00"]},
}

#: Each route with a hand check, and a request to it an executor sends.
_COMMON: dict[str, dict[str, Any]] = {
    "update_task_status": _UPDATE,
    "update_task_statuses": {"updates": [_UPDATE, {**_UPDATE, "taskId": "u"}]},
    "report_and_pop": {"updates": [_UPDATE], "executor": "e1", "max": 2},
    "register_executor": {
        "executor": "e1",
        "queues": ["default", "gpu"],
        "versions": {"d": {"t": "v1"}},
        "retained": {"d": {"t": ["v0"]}},
        "labels": {"host": "h"},
        "ppacerVersion": "0.1.0",
        "protocolVersion": 2,
    },
    "executor_heartbeat": {"executor": "e1", "leases": ["a", "b"], "running": 2, "capacity": 8},
    "ship_task_logs": {"executor": "e1", "records": [_RECORD]},
    "pop_task": {"wait_s": "1.5", "executor": "e1"},
    "pop_tasks": {"wait_s": "2", "executor": "e1", "max": "8"},
}


def _wire_and_model(name: str) -> tuple[type[checked.WireInput], Any]:
    route = ROUTES[name]
    wire = route.wire_body or route.wire_query
    model = route.model("body") if route.wire_body else route.model("query")
    assert wire is not None and model is not None
    return wire, model


def test_every_route_with_a_hand_check_is_covered() -> None:
    with_check = {n for n, r in ROUTES.items() if r.wire_body or r.wire_query}
    assert with_check == set(_COMMON)


@pytest.mark.parametrize("name", sorted(_COMMON))
def test_an_executors_common_request_is_read_by_hand_as_its_model_reads_it(name: str) -> None:
    wire, model = _wire_and_model(name)
    data = _COMMON[name]
    by_hand = wire.check(data)
    assert by_hand is not None
    assert by_hand == wire.from_valid(model.model_validate(data).model_dump())


@pytest.mark.parametrize("name", sorted(_COMMON))
def test_defaults_are_the_models(name: str) -> None:
    wire, model = _wire_and_model(name)
    required = {k for k, f in model.model_fields.items() if f.is_required()}
    data = {k: v for k, v in _COMMON[name].items() if k in required}
    by_hand = wire.check(data)
    assert by_hand is not None
    assert by_hand == wire.from_valid(model.model_validate(data).model_dump())


def _mutations(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    keys = sorted(base)
    return st.builds(
        lambda drop, changes: {
            **{k: v for k, v in base.items() if k not in drop},
            **changes,
        },
        st.sets(st.sampled_from(keys)),
        st.dictionaries(st.sampled_from(keys), _VALUES, max_size=3),
    )


def _holds_to_its_model(name: str, data: dict[str, Any]) -> None:
    wire, model = _wire_and_model(name)
    by_hand = wire.check(data)
    if by_hand is None:
        return  # the model decides
    try:
        valid = model.model_validate(data)
    except ValidationError as exc:
        pytest.fail(f"{name}: the hand check took {data!r}, which the model refuses: {exc}")
    assert by_hand == wire.from_valid(valid.model_dump())


@pytest.mark.parametrize("name", sorted(set(_COMMON) - {"pop_task", "pop_tasks"}))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_what_a_hand_check_takes_its_model_takes_as_the_same_values(
    name: str, data: st.DataObject
) -> None:
    base = _COMMON[name]
    request = data.draw(_mutations(base))
    for key in ("updates", "records"):  # one item of a list changed, too
        if (
            isinstance(request.get(key), list)
            and request[key]
            and isinstance(request[key][0], dict)
        ):
            first = request[key][0]
            request[key] = [data.draw(_mutations(first)), *request[key][1:]]
    _holds_to_its_model(name, request)


@pytest.mark.parametrize("name", sorted(set(_COMMON) - {"pop_task", "pop_tasks"}))
def test_each_field_set_to_each_kind_of_value_holds_to_the_model(name: str) -> None:
    base = _COMMON[name]
    for key in base:
        for value in _VALUE_LIST:
            _holds_to_its_model(name, {**base, key: value})
        _holds_to_its_model(name, {k: v for k, v in base.items() if k != key})
    for key in ("updates", "records"):  # and each field of a list's item
        if key in base:
            item = base[key][0]
            for field in item:
                for value in _VALUE_LIST:
                    _holds_to_its_model(name, {**base, key: [{**item, field: value}]})


_QUERY_TEXT = st.one_of(
    st.sampled_from(
        ["", "0", "1", "1.5", "-1", "01", "1e3", " 2", "inf", "nan", "1001", "x" * 201]
    ),
    st.text(alphabet="0123456789.-e+ x", max_size=6),
)


@pytest.mark.parametrize("name", ["pop_task", "pop_tasks"])
@settings(max_examples=300, deadline=None)
@given(values=st.dictionaries(st.sampled_from(["wait_s", "executor", "max", "other"]), _QUERY_TEXT))
def test_a_polls_query_read_by_hand_is_what_its_model_reads(
    name: str, values: dict[str, str]
) -> None:
    _holds_to_its_model(name, values)


def test_a_doubtful_request_is_left_to_the_model() -> None:
    wire, _ = _wire_and_model("update_task_status")
    assert wire.check({**_UPDATE, "retry": True}) is None
    assert wire.check({**_UPDATE, "retry": 1.0}) is None
    assert wire.check({**_UPDATE, "dagId": ""}) is None
    assert wire.check({**_UPDATE, "taskError": "bad\x00text"}) is None  # the model mends it
    assert wire.check({k: v for k, v in _UPDATE.items() if k != "status"}) is None


def test_a_hand_read_update_becomes_the_report_it_carries() -> None:
    update = checked.StatusUpdate.check(_UPDATE)
    assert update is not None
    stored_ts = parse_exec_ts("2024-01-02T03:04:05Z")
    assert update.to_report() == StatusReport(
        "d", stored_ts, "t", 0, TaskStatus.SUCCESS, None, "tok", {"n": 1}, ["t2"]
    )
    with pytest.raises(InvalidInputError, match="status: unknown task status"):
        checked.StatusUpdate.check({**_UPDATE, "status": "DONE"}).to_report()  # type: ignore[union-attr]
    record = checked.LogRecordIn.check(_RECORD)
    assert record is not None
    assert isinstance(record.to_record(), LogRecord)


def test_the_executors_answers_read_as_their_models_read_them() -> None:
    terms = {
        "executor": "e1",
        "schedulerVersion": "0.1.0",
        "protocolVersion": 2,
        "leaseTimeoutS": 30,
        "maxPopWaitS": 25.5,
    }
    model = ROUTES["register_executor"].model("answer")
    assert model is not None
    by_hand = answers.Terms.check(terms)
    assert by_hand is not None
    assert by_hand == answers.Terms.from_valid(model.model_validate(terms).model_dump())
    assert by_hand["missingTasks"] == [] and by_hand.leaseTimeoutS == 30.0
    assert answers.Terms.check({**terms, "protocolVersion": "2"}) is None
    stored = {"stored": 2, "duplicates": 1, "rejected": [{"index": 0, "error": "bad"}]}
    logs = answers.LogsStored.check(stored)
    assert logs is not None and logs.to_json() == stored and logs.rejected[0].index == 0


def test_serving_executors_loads_no_validation_library() -> None:
    code = (
        "import sys, ppacer.local, ppacer.app, ppacer.api.client, ppacer.executor.executor\n"
        "print(','.join(m for m in sys.modules if m.split('.')[0] == 'pydantic'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
