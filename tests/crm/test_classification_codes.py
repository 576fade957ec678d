"""Codes classified on purpose: a locked record waits minutes, business rules fail at once."""

from __future__ import annotations

import pytest

from syncengine.crm.classification import (
    ErrorClass,
    classify_record,
    retry_floor_s,
    verdict_for,
)
from syncengine.crm.responses import RecordResults, parse_write_response
from syncengine.model import Verdict


def test_a_locked_record_is_its_own_class_retried_after_a_long_floor() -> None:
    assert classify_record("RECORD_LOCKED") is ErrorClass.LOCKED
    assert verdict_for(ErrorClass.LOCKED) is Verdict.RETRY
    assert retry_floor_s("RECORD_LOCKED") >= 60.0
    # Unknown codes keep the ordinary schedule.
    assert classify_record("SOMETHING_NEW") is ErrorClass.TRANSIENT_RECORD
    assert retry_floor_s("SOMETHING_NEW") == 0.0
    assert retry_floor_s("INTERNAL_ERROR") == 0.0


@pytest.mark.parametrize(
    "code", ["RECORD_IN_BLUEPRINT", "NOT_APPROVED", "CANNOT_PERFORM_ACTION", "ID_ALREADY_CONVERTED"]
)
def test_business_rule_codes_fail_the_record_with_their_code(code: str) -> None:
    body = (
        b'{"data":[{"code":"%s","status":"error","message":"m","details":{"api_name":"Stage"}}]}'
        % code.encode()
    )
    parsed = parse_write_response(202, body, 1)
    assert isinstance(parsed, RecordResults)
    [outcome] = parsed.outcomes
    assert (outcome.verdict, outcome.code) == (Verdict.REJECT, code)
    assert outcome.details == {"api_name": "Stage"}
