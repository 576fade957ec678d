"""The error taxonomy and response parsing (syncengine.crm.classification, .responses)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncengine.crm.classification import (
    FATAL_REQUEST_CODES,
    PERMANENT_RECORD_CODES,
    ErrorClass,
    classify_record,
    classify_request,
    verdict_for,
)
from syncengine.crm.responses import RecordResults, RequestFailure, parse_write_response
from syncengine.model import Verdict

codes = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=30)
statuses = st.integers(min_value=100, max_value=599)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("SUCCESS", ErrorClass.SUCCESS),
        ("INVALID_DATA", ErrorClass.PERMANENT),
        ("MANDATORY_NOT_FOUND", ErrorClass.PERMANENT),
        ("DUPLICATE_DATA", ErrorClass.PERMANENT),
        ("RECORD_IN_BLUEPRINT", ErrorClass.PERMANENT),
        ("RECORD_LOCKED", ErrorClass.LOCKED),
        ("SOMETHING_NEW", ErrorClass.TRANSIENT_RECORD),
    ],
)
def test_record_codes(code: str, expected: ErrorClass) -> None:
    """Per-record codes map as in crm-api.md §4; RECORD_LOCKED and unknown codes retry."""
    assert classify_record(code) is expected


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (401, "INVALID_TOKEN", ErrorClass.TOKEN),
        (401, "AUTHENTICATION_FAILURE", ErrorClass.TOKEN),
        (401, "OAUTH_SCOPE_MISMATCH", ErrorClass.FATAL),
        (403, "NO_PERMISSION", ErrorClass.FATAL),
        (403, "FEATURE_NOT_SUPPORTED", ErrorClass.FATAL),
        (400, "INVALID_MODULE", ErrorClass.FATAL),
        (400, "AUTHORIZATION_FAILED", ErrorClass.FATAL),
        (400, "LIMIT_EXCEEDED", ErrorClass.FATAL),
        (404, "INVALID_URL_PATTERN", ErrorClass.FATAL),
        (405, None, ErrorClass.FATAL),
        (429, "TOO_MANY_REQUESTS", ErrorClass.THROTTLED),
        (429, None, ErrorClass.THROTTLED),
        (500, "INTERNAL_ERROR", ErrorClass.TRANSIENT_REQUEST),
        (503, None, ErrorClass.TRANSIENT_REQUEST),
        (400, "INVALID_DATA", ErrorClass.POISON),
        (400, None, ErrorClass.POISON),
        (200, None, ErrorClass.TRANSIENT_REQUEST),
    ],
)
def test_request_codes(status: int, code: str | None, expected: ErrorClass) -> None:
    """Whole-request answers map as in design.md's taxonomy table."""
    assert classify_request(status, code) is expected


@given(code=codes)
def test_record_classes_are_per_record(code: str) -> None:
    """Any per-record code maps to a per-record class with a verdict, never a request class."""
    error_class = classify_record(code)
    assert verdict_for(error_class) in set(Verdict)
    if code in PERMANENT_RECORD_CODES:
        assert verdict_for(error_class) is Verdict.REJECT


@given(status=statuses, code=st.none() | codes)
def test_request_classes_never_succeed(status: int, code: str | None) -> None:
    """A whole-request answer is never a success, and 429/5xx are never fatal."""
    error_class = classify_request(status, code)
    assert error_class is not ErrorClass.SUCCESS
    if status == 429:
        assert error_class is ErrorClass.THROTTLED
    elif status >= 500:
        assert error_class is ErrorClass.TRANSIENT_REQUEST
    if code in FATAL_REQUEST_CODES and status not in (429,) and status < 500:
        assert error_class is ErrorClass.FATAL


def test_verdict_for_refuses_request_classes() -> None:
    """Whole-request classes have no per-record verdict: the client must resolve them."""
    with pytest.raises(ValueError):
        verdict_for(ErrorClass.THROTTLED)


def _ok(record_id: str) -> dict[str, Any]:
    return {"code": "SUCCESS", "status": "success", "message": "record updated",
            "details": {"id": record_id}}  # fmt: skip


def _err(code: str, api_name: str) -> dict[str, Any]:
    return {"code": code, "status": "error", "message": "invalid data",
            "details": {"api_name": api_name}}  # fmt: skip


@pytest.mark.parametrize("status", [202, 207])
def test_partial_answer_maps_by_position(status: int) -> None:
    """202 and 207 alike: each element gives its record's outcome, by position."""
    body = orjson.dumps(
        {"data": [_ok("1"), _err("INVALID_DATA", "Email"), _err("RECORD_LOCKED", "id"), _ok("4")]}
    )
    parsed = parse_write_response(status, body, 4)
    assert isinstance(parsed, RecordResults)
    assert [o.verdict for o in parsed.outcomes] == [
        Verdict.SYNCED,
        Verdict.REJECT,
        Verdict.RETRY,
        Verdict.SYNCED,
    ]
    assert parsed.outcomes[0].crm_id == "1"
    assert parsed.outcomes[1].details == {"api_name": "Email"}
    assert parsed.outcomes[1].crm_id is None


def test_all_failed_400_with_data_is_per_record() -> None:
    """A 400 that carries data[] is read per record, not as a whole-request error."""
    body = orjson.dumps({"data": [_err("MANDATORY_NOT_FOUND", "Last_Name")] * 2})
    parsed = parse_write_response(400, body, 2)
    assert isinstance(parsed, RecordResults)
    assert {o.code for o in parsed.outcomes} == {"MANDATORY_NOT_FOUND"}


@pytest.mark.parametrize(
    ("status", "body", "records", "code", "error_class"),
    [
        (200, b"not json", 1, "BAD_RESPONSE", ErrorClass.TRANSIENT_REQUEST),
        (200, b"", 1, "BAD_RESPONSE", ErrorClass.TRANSIENT_REQUEST),
        (200, b'{"data": [{"code": "SUCCESS"}]}', 2, "BAD_RESPONSE", ErrorClass.TRANSIENT_REQUEST),
        (200, b'{"data": ["x"]}', 1, "BAD_RESPONSE", ErrorClass.TRANSIENT_REQUEST),
        (202, b'{"info": {}}', 1, "BAD_RESPONSE", ErrorClass.TRANSIENT_REQUEST),
        (502, b"<html>bad gateway</html>", 3, "INTERNAL_ERROR", ErrorClass.TRANSIENT_REQUEST),
        (500, b'{"code": "INTERNAL_ERROR", "message": "x"}', 1, "INTERNAL_ERROR",
         ErrorClass.TRANSIENT_REQUEST),
        (429, b"", 1, "HTTP_429", ErrorClass.THROTTLED),
        (401, b'{"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token",'
              b' "status": "error"}', 1, "INVALID_TOKEN", ErrorClass.TOKEN),
        (400, b'{"code": "INVALID_MODULE", "details": {}, "message": "m", "status": "error"}',
         1, "INVALID_MODULE", ErrorClass.FATAL),
        (400, b'{"code": "INVALID_DATA", "details": {}, "message": "m", "status": "error"}',
         5, "INVALID_DATA", ErrorClass.POISON),
    ],
)  # fmt: skip
def test_whole_request_failures(
    status: int, body: bytes, records: int, code: str, error_class: ErrorClass
) -> None:
    """Bodies without usable data[] fail the whole request; never a success."""
    parsed = parse_write_response(status, body, records)
    assert isinstance(parsed, RequestFailure)
    assert (parsed.code, parsed.error_class) == (code, error_class)


@given(
    status=statuses,
    body=st.binary(max_size=64)
    | st.builds(
        lambda v: orjson.dumps(v),
        st.dictionaries(st.text(alphabet='ab_"\\é', max_size=5), st.integers(-(2**60), 2**60)),
    ),
)
def test_garbage_never_reads_as_success(status: int, body: bytes) -> None:
    """No body without a SUCCESS element can make a record SYNCED."""
    parsed = parse_write_response(status, body, 1)
    if isinstance(parsed, RecordResults):
        assert all(o.verdict is not Verdict.SYNCED for o in parsed.outcomes)
