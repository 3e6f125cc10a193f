"""NUL characters in what clients send: refused in names and ids, kept visible in free text.

PostgreSQL's text cannot hold NUL (SQLite's can): a request must not be stored on
one database and be a 500 on the other.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ppacer.api.models import (
    DagRunTriggerInput,
    ExecutorRegistration,
    LogRecordInput,
    TaskStatusUpdate,
)

ATTEMPT = {"dagId": "d", "execTs": "2024-01-01T00:00:00.000000UTC+00:00", "taskId": "t"}


def test_a_nul_in_an_actor_or_a_name_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as refused:
        DagRunTriggerInput.model_validate({"dagId": "d", "actor": "x\x00y"})
    assert refused.value.errors()[0]["loc"] == ("actor",)
    assert "NUL" in str(refused.value)
    with pytest.raises(ValidationError) as refused:
        ExecutorRegistration.model_validate({"executor": "e", "labels": {"k": "v\x00"}})
    assert refused.value.errors()[0]["loc"] == ("labels",)


def test_a_nul_in_a_tasks_error_or_log_line_is_kept_visible() -> None:
    update = TaskStatusUpdate.model_validate(
        {**ATTEMPT, "retry": 0, "status": "FAILED", "taskError": "bad\x00byte"}
    )
    assert update.taskError == "bad\ufffdbyte"
    record = LogRecordInput.model_validate(
        {
            **ATTEMPT,
            "retry": 0,
            "seq": 0,
            "insertTs": ATTEMPT["execTs"],
            "level": "INFO",
            "message": "a\x00b",
        }
    )
    assert record.message == "a\ufffdb"


def test_params_may_hold_any_text_as_they_are_stored_encoded() -> None:
    trigger = DagRunTriggerInput.model_validate({"dagId": "d", "params": {"k\x00": "v\x00"}})
    assert trigger.params == {"k\x00": "v\x00"}
